"""The request service: Needs, pledges, the item catalogue and the forum's decisions."""
