"""Post-deploy monitoring: windows (data), ticks (short runs), decisions, rollback delivery."""
