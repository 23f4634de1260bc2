"""Policies: scripted experts now; bundle export and the deployment adapter later."""
