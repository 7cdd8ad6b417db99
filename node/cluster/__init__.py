"""Cluster roles of a vpnd: the controller role and the member role (CLUSTER.md decision 8)."""
