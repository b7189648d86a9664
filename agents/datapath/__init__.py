"""agents/datapath."""
