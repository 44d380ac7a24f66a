"""inform: study and prevent reward hacking in RLHF (InfoRM, BSR, PPO, CSI)."""
__version__ = "0.1.0"
