"""Example bots, runnable as they are: ``HIKER_RESPONDER=hiker.examples.signup:make make run``."""
