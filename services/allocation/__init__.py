"""The allocation service: Matching confirmed pledges to endorsed needs."""
