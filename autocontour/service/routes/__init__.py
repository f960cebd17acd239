"""One router per resource: logins and tokens, cases (uploads), jobs, results, models."""
