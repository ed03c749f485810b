"""What does not ship: scene generator, training scripts and evaluations of the offline models."""
