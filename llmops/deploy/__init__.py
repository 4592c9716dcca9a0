"""Deploy targets: desired state, rendering, planning and applying per environment."""
