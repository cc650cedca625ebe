"""The delivery service: Shipments through the hubs to handover at the border."""
