"""harvesters.settings: the fetch limits and host allow-list read from the configuration.

HARVEST_ALLOW_HOSTS lets an index reach named hosts on private addresses (an intranet node,
the e2e tests' loopback addresses) while everything else keeps the default refusals; no
network is needed to check that (literal addresses and "localhost" are judged before any
connection).
"""

from __future__ import annotations

import pytest

from harvesters.addresses import HostList, check_url
from harvesters.errors import RefusedURL
from harvesters.fetch import FetchPolicy
from harvesters.settings import HarvestSettings
from service.config import DEFAULTS


def policy(**config) -> FetchPolicy:
    return HarvestSettings.from_mapping({**DEFAULTS, **config}, "/tmp/instance").policy()


def test_the_defaults_are_the_fetch_policys_own():
    default, mine = FetchPolicy(), policy()
    assert (mine.deadline, mine.max_bytes, mine.max_decompressed, mine.allow_hosts,
            mine.allow_private) == (default.deadline, default.max_bytes,
                                    default.max_decompressed, (), False)


@pytest.mark.parametrize("hosts", ["127.0.0.2, .intranet.example", '127.0.0.2,.intranet.example,',
                                   ["127.0.0.2", " .intranet.example "]])
def test_allow_hosts_from_an_environment_string_or_a_toml_list(hosts):
    assert policy(HARVEST_ALLOW_HOSTS=hosts).allow_hosts == ("127.0.0.2", ".intranet.example")


def test_limits_from_environment_strings_and_numbers():
    mine = policy(HARVEST_DEADLINE="2.5", HARVEST_MAX_BYTES="4194304",
                  HARVEST_MAX_DECOMPRESSED=16 * 2**20)
    assert (mine.deadline, mine.max_bytes, mine.max_decompressed) == (2.5, 4 * 2**20, 16 * 2**20)
    unset = policy(HARVEST_DEADLINE="", HARVEST_MAX_BYTES=0)  # empty or 0: the built-in value
    assert (unset.deadline, unset.max_bytes) == (FetchPolicy().deadline, FetchPolicy().max_bytes)


def test_allowed_hosts_pass_and_every_other_local_address_stays_refused():
    mine = policy(HARVEST_ALLOW_HOSTS="127.0.0.2,127.0.0.3")
    allow = HostList(mine.allow_hosts)
    assert check_url("http://127.0.0.2:8080/feed", allow=allow).addresses == ("127.0.0.2",)
    for url in ("http://127.0.0.1:8080/", "http://localhost/", "http://127.0.0.4/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://10.0.0.2/"):
        with pytest.raises(RefusedURL) as info:
            check_url(url, allow=allow)
        assert info.value.reason == "refused-address", url
