CREATE INDEX idx_users_email ON users (email);
CREATE INDEX idx_sessions_user_expires ON sessions (user_id, expires_at);
