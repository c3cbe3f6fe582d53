"""The client address behind the proxy: TRUSTED_PROXIES must parse, and production should set it."""

import ipaddress

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security)
def trusted_proxies(app_configs, **kwargs) -> list[Error | Warning]:
    found: list[Error | Warning] = []
    for proxy in settings.TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            found.append(
                Error(
                    f"TRUSTED_PROXIES has {proxy!r}, which is not an address or a network.",
                    hint="List addresses or CIDRs, e.g. 10.0.0.0/8,172.16.0.0/12.",
                    id="accounts.E001",
                )
            )
    if settings.PRODUCTION and not settings.TRUSTED_PROXIES:
        found.append(
            Warning(
                "TRUSTED_PROXIES is empty in production.",
                hint=(
                    "Behind nginx or an ingress every request then comes from the proxy's address: "
                    "one address's failed sign-ins would lock everyone out. Set it to the proxy's "
                    "network (docs/security.md, 'Abuse limits')."
                ),
                id="accounts.W001",
            )
        )
    return found
