"""The serving stage: the deployment target, rollouts on Ray Serve (slots, routing, the
Serve REST API) and the endpoint's client (predict, smoke tests)."""
