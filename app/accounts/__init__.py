"""Local accounts (e-mail and password), their login and refresh tokens, and API keys."""
