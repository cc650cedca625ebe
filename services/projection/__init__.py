"""The projection service: Read models, the live event stream and the operators' dashboard."""
