"""vpnclient: a SoftEther-protocol (SE-VPN) client for drills, tests and load.

Sans-IO cores: `login` (signature, hello, password/ticket login, welcome or
redirect), `tunnel` (data blocks, keep-alives, session timeout), `retry`
(backoff schedule and status record), `frames` (hand-built ARP/ICMP frames
and a tiny responder). Edges: `connection` (one TLS connection, asyncio),
`ports` (TAP device / in-process frames), `client` (the reconnecting
supervisor and `UserspaceClient`), `probe` (ARP resolve, ping RTTs),
`gaps` (outage measurement with a ping stream), `main` (the CLI).
"""
