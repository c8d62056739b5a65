ALTER TABLE users ADD COLUMN role text DEFAULT 'user';
