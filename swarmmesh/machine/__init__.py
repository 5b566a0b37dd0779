"""What the machine must have: the declared system packages and the checks of ``doctor``."""
