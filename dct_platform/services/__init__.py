"""Domain services. Each takes the session, the acting user and `now`; each only flushes."""
