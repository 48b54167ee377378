"""The swarm runtime: an env instance as one stack (`docker stack deploy`) on a Swarm.

matrix (what maps), render (the stack file), facts (what the manager says), plan (the
steps of `up`), apply (running them), images (to every node), routes (the proxy in front
of the nodes' host ports), observe (status and verify). README: Swarm.
"""
