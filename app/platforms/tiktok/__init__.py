"""TikTok Shop Open API (version 202309+)."""
