"""The data plane: the flow language, the ingress/overlay/VIP rules as pure functions of the
model, and sync by difference.  Imports nothing of os-ken (the control layer translates)."""
