ALTER TABLE users DROP COLUMN free_mail, DROP COLUMN email_domain;
