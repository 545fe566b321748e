"""The ActiveCampaign side: the HTTP client, the request budget, the resources and their records."""
