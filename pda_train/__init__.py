"""Training side of the PDA toolkit: networks, losses, the streaming trainer and evaluation."""
