DROP INDEX idx_users_email;
DROP INDEX idx_sessions_user_expires;
