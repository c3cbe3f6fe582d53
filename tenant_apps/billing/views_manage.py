"""Billing pages for institution admins and mentors (settings, payments, payouts, earnings)."""

urlpatterns: list = []
