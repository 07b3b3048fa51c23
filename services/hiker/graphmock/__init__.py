"""A stand-in for the Graph API's messages endpoint, for local runs and tests."""
