-- IRREVERSIBLE (no down file): the original case of each address is not kept.
UPDATE users SET email = lower(email) WHERE email IS NOT NULL AND email <> lower(email);
