"""Data safety and privacy: encryption at rest, backups, checks, the audit view, privacy export and erasure."""
