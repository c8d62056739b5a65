ALTER TABLE users DROP COLUMN name_key, DROP COLUMN display_name;
