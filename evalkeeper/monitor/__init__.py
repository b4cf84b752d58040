"""Post-deploy monitoring: windows, ticks, decisions, rollback delivery."""
