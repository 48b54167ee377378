"""#9.10: an instance's URL keeps the admin URL's TLS settings (sslmode, sslrootcert, rediss://,
ssl_*), and never the admin's own client certificate, which would be a credential."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from envplane.backends.cache.redis import RedisUsers
from envplane.backends.database.postgres import PostgresDatabases
from envplane.provision import for_containers
from envplane.secret import Secret

PASSWORD = Secret("p@ss/w:rd")


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_postgres_url_keeps_sslmode_and_sslrootcert() -> None:
    admin = ("postgresql://admin:adm@db.example.com:6432/postgres"
             "?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem&connect_timeout=3")
    url = PostgresDatabases(Secret(admin)).url("shop_staging", PASSWORD).reveal()
    assert url.startswith("postgresql://shop_staging:p%40ss%2Fw%3Ard@db.example.com:6432/shop_staging?")
    assert query(url) == {"sslmode": ["verify-full"], "sslrootcert": ["/etc/ssl/db-ca.pem"]}


def test_postgres_url_from_a_keyword_conninfo_keeps_tls() -> None:
    admin = "host=db.example.com port=5432 dbname=postgres user=admin password=adm sslmode=require"
    url = PostgresDatabases(Secret(admin)).url("shop_pr_5", PASSWORD).reveal()
    assert query(url) == {"sslmode": ["require"]}


def test_postgres_url_never_carries_the_admin_client_certificate() -> None:
    admin = ("postgresql://admin@db.example.com/postgres?sslmode=verify-ca&sslrootcert=/ca.pem"
             "&sslcert=/admin.crt&sslkey=/admin.key&sslpassword=secret")
    url = PostgresDatabases(Secret(admin)).url("shop_staging", PASSWORD).reveal()
    assert query(url) == {"sslmode": ["verify-ca"], "sslrootcert": ["/ca.pem"]}
    assert "admin" not in url


def test_postgres_url_without_tls_has_no_query() -> None:
    url = PostgresDatabases(Secret("postgresql://a:b@127.0.0.1:5432/x")).url("shop_staging", PASSWORD).reveal()
    assert url == "postgresql://shop_staging:p%40ss%2Fw%3Ard@127.0.0.1:5432/shop_staging"


def test_redis_url_keeps_rediss_and_ssl_parameters() -> None:
    admin = ("rediss://default:adm@cache.example.com:6380/2"
             "?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/redis-ca.pem&ssl_check_hostname=true")
    url = RedisUsers(Secret(admin)).url("shop:staging:", PASSWORD).reveal()
    assert url.startswith("rediss://shop%3Astaging:p%40ss%2Fw%3Ard@cache.example.com:6380/2?")
    assert query(url) == {"ssl_cert_reqs": ["required"], "ssl_ca_certs": ["/etc/ssl/redis-ca.pem"],
                          "ssl_check_hostname": ["true"]}


def test_redis_url_never_carries_the_admin_client_certificate() -> None:
    admin = ("rediss://default:adm@cache.example.com:6380/0?ssl_cert_reqs=required"
             "&ssl_certfile=/admin.crt&ssl_keyfile=/admin.key&ssl_password=x")
    url = RedisUsers(Secret(admin)).url("shop:staging:", PASSWORD).reveal()
    assert query(url) == {"ssl_cert_reqs": ["required"]}


def test_redis_url_without_tls_is_plain() -> None:
    url = RedisUsers(Secret("redis://127.0.0.1:6379/0")).url("shop:pr-5:", PASSWORD).reveal()
    assert url == "redis://shop%3Apr-5:p%40ss%2Fw%3Ard@127.0.0.1:6379/0"


def test_the_container_address_keeps_the_query() -> None:
    url = "rediss://u:p@127.0.0.1:6380/0?ssl_cert_reqs=required"
    assert for_containers(url) == "rediss://u:p@host.docker.internal:6380/0?ssl_cert_reqs=required"
