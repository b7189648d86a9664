"""What the three machines share: configs, events, transitions, timers, budgets, bindings."""
