"""vpndrill: scripted failover drills (tools/vpndrill/main.py)."""
