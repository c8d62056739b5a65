-- migrations-wasm/js/v009_add_email_domains on PostgreSQL.
ALTER TABLE users ADD COLUMN email_domain text, ADD COLUMN free_mail integer;
UPDATE users SET email_domain = nullif(lower(btrim(substr(email, length(email) - strpos(reverse(email), '@') + 2))), '')
 WHERE strpos(email, '@') > 0;
UPDATE users SET free_mail = CASE WHEN email_domain IN ('gmail.com', 'outlook.com', 'yahoo.com', 'proton.me')
                                  THEN 1 ELSE 0 END
 WHERE email_domain IS NOT NULL;
