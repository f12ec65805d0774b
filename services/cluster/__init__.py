"""The whole cluster on one machine: a background supervisor (`python -m cluster up|down|status`)
and a simulated consultation that shows the live ranking (`python -m cluster demo`)."""
