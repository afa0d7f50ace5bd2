"""The built-in root-cause taxonomy and the mapping of other tools' labels onto it.

Each category carries a description written as a failure would be reported (symptoms, typical
error text, typical fixes): the assistant embeds these, so a new incident can match a category
even when no similar incident has been resolved yet. Labels from imports are matched
case-insensitively against slugs, names and ALIASES; an unknown label becomes a new category.
"""

from django.utils.text import slugify

# (slug, name, description)
DEFAULT_CATEGORIES: list[tuple[str, str, str]] = [
    ("credentials-expired", "Credentials expired or revoked",
     "Authentication failed because a password, API key, access token, OAuth refresh token, service "
     "account key or SFTP credential expired, was rotated or revoked. 401 Unauthorized, 403 Forbidden, "
     "invalid_grant, ORA-28001 password has expired, login failed for user, access denied, "
     "permission denied (publickey), token expired. Fixed by rotating the secret and updating the connection."),
    ("certificate-expired", "Certificate expired or invalid",
     "TLS/SSL certificate expired, not yet valid, or its chain is untrusted: certificate verify failed, "
     "x509: certificate has expired, SSLHandshakeException, PKIX path building failed, hostname mismatch, "
     "intermediate CA missing, cert-manager or Let's Encrypt renewal did not run. Fixed by renewing "
     "and deploying the certificate and monitoring expiry dates."),
    ("disk-full", "Disk or storage full",
     "A disk, volume, landing zone, temp directory or log partition ran out of space or inodes: "
     "No space left on device, errno 28, ENOSPC, disk quota exceeded, write failed, filesystem 100% "
     "used, bucket quota reached. Fixed by cleaning old files, adding retention and growing the volume."),
    ("upstream-late", "Upstream data late or missing",
     "An expected input file, feed, extract or partition from an upstream system or partner did not "
     "arrive on time or was empty: file not found, no such file, sensor timed out waiting, "
     "zero-byte file, missing trigger file, upstream job delayed. Fixed by waiting, re-requesting the "
     "delivery, or adding arrival sensors and SLAs on the feed."),
    ("schema-drift", "Schema drift",
     "The structure of incoming data changed without notice: a CSV column was added, renamed, "
     "reordered or removed, a header changed, a JSON field changed type, an API response format "
     "changed, unexpected column count, KeyError on a field, cannot parse, type mismatch. Fixed by "
     "updating the mapping and adding a schema contract check."),
    ("duplicate-data", "Duplicate records",
     "Records were loaded or processed twice: duplicate key value violates unique constraint, "
     "IntegrityError, double-counted totals, a retried job re-inserted rows, a file was delivered "
     "twice, non-idempotent writes, at-least-once delivery replayed messages. Fixed by deduplicating "
     "and making loads idempotent with merge/upsert keys."),
    ("rate-limited", "Rate limited by an API",
     "An external API or service throttled requests: HTTP 429 Too Many Requests, Retry-After, "
     "quota exceeded, throttling exception, request limit reached, SlowDown. Fixed by backing off "
     "with jitter, lowering concurrency, batching calls or raising the quota."),
    ("resource-exhaustion", "Connection pool or resource exhaustion",
     "A finite resource ran out: database connection pool exhausted, too many connections, "
     "FATAL: sorry, too many clients already, QueuePool limit reached, file descriptors exhausted "
     "(too many open files), thread pool saturated, ephemeral ports exhausted. Fixed by releasing "
     "leaked connections, sizing pools and adding a pooler."),
    ("lock-contention", "Lock timeouts and deadlocks",
     "Database transactions blocked each other: deadlock detected, lock wait timeout exceeded, "
     "ORA-00060, SQLSTATE 40P01, could not obtain lock, statement timeout while waiting for a lock, "
     "long-running transaction or vacuum blocking, table locked by another job. Fixed by ordering "
     "locks consistently, shorter transactions and retrying on deadlock."),
    ("out-of-memory", "Out of memory",
     "A worker or container ran out of memory: OOMKilled, exit code 137, MemoryError, "
     "java.lang.OutOfMemoryError: Java heap space, GC overhead limit exceeded, killed by the kernel "
     "oom-killer, memory leak grew until crash, loading a whole file into memory. Fixed by streaming "
     "in chunks, raising limits and fixing the leak."),
    ("timezone-dst", "Time zone and daylight saving mistakes",
     "A schedule or date calculation went wrong because of time zones or daylight saving time: job "
     "ran twice or skipped at the DST change, UTC versus local time confusion, off-by-one-hour "
     "timestamps, wrong business date, cron in server time, leap day or month-end edge case. Fixed by "
     "scheduling in an explicit time zone and storing UTC."),
    ("partial-load", "Partial load",
     "A load or job stopped halfway and left incomplete data: some partitions or batches written and "
     "others missing, a truncated file, interrupted transfer, row count mismatch between source and "
     "target, job killed mid-run without rollback. Fixed by loading atomically (staging and swap) and "
     "reconciling counts."),
    ("config-change", "Configuration change",
     "A configuration change caused the failure: a wrong setting, flag, environment variable, "
     "feature toggle, connection string, firewall or routing rule, IAM policy or limit was changed, "
     "often by a push of config to production; misconfiguration; typo in a config file. Fixed by "
     "rolling back the config and validating config changes before rollout."),
    ("bad-deploy", "Bad deploy or software bug",
     "A new release, code change, library upgrade or migration introduced a bug or regression: "
     "exception after deploy, null pointer, broken build, incompatible dependency version, faulty "
     "migration, logic error, rollout went wrong. Fixed by rolling back the release and adding tests "
     "or canary deploys."),
    ("dependency-outage", "Dependency or third-party outage",
     "A service we depend on was down or degraded: a cloud provider region outage, a SaaS vendor, a "
     "partner API returning 500/502/503 Service Unavailable, a message broker, identity provider, "
     "payment gateway or storage service failure outside our control. Fixed by waiting for the "
     "provider, failing over, and adding fallbacks."),
    ("network", "Network failure",
     "Network connectivity broke: connection refused, connection reset by peer, timed out, "
     "no route to host, packet loss, BGP route leak, load balancer or switch failure, firewall "
     "dropped traffic, network partition, MTU, VPN tunnel down, latency spike between data centres. "
     "Fixed by restoring routes or links and adding redundancy."),
    ("dns", "DNS failure",
     "Name resolution failed or returned wrong answers: NXDOMAIN, Name or service not known, "
     "getaddrinfo failed, SERVFAIL, DNS record deleted or misconfigured, TTL, resolver outage, "
     "expired domain. Fixed by correcting the records and caching resolvers."),
    ("database", "Database failure",
     "The database itself failed or degraded: primary failover, replication lag, replica out of "
     "sync, corrupted index or table, query plan regression, slow queries, vacuum or compaction "
     "backlog, storage engine crash, database migration gone wrong. Fixed by failing over, "
     "rebuilding, or tuning the query."),
    ("capacity", "Capacity and load",
     "Demand exceeded capacity: traffic spike, overload, CPU saturation, queue backlog growing, "
     "autoscaling too slow or capped, thundering herd, retry storm, hot partition, insufficient "
     "servers for peak, cascading failure under load. Fixed by adding capacity, load shedding and "
     "rate limiting clients."),
    ("data-quality", "Bad input data",
     "The input data was wrong although its schema was fine: null values, invalid dates, negative "
     "amounts, wrong encoding (UnicodeDecodeError), out-of-range values, failed data quality check, "
     "row count threshold breached, unexpected empty values. Fixed by quarantining bad rows and "
     "asking the source to correct them."),
    ("human-error", "Human error",
     "A person made a mistake while operating the system: ran a command against the wrong "
     "environment, deleted data or a resource by accident, mistyped a parameter, a manual step was "
     "skipped in a procedure, fat-fingered input. Fixed by restoring from backup and adding "
     "safeguards, confirmations and automation."),
    ("hardware", "Hardware or infrastructure failure",
     "Physical or virtual infrastructure failed: disk or host hardware failure, power outage, "
     "cooling, a node or VM crashed or was preempted, kernel panic, failed storage controller, "
     "data centre incident. Fixed by replacing hardware and spreading across failure domains."),
]

# Other tools' labels, lower-cased, that mean one of our categories.
ALIASES: dict[str, str] = {
    "credentials": "credentials-expired", "expired credentials": "credentials-expired",
    "authentication": "credentials-expired", "auth": "credentials-expired", "expired password": "credentials-expired",
    "secret rotation": "credentials-expired", "access": "credentials-expired",
    "certificate": "certificate-expired", "certificates": "certificate-expired", "cert": "certificate-expired",
    "ssl": "certificate-expired", "tls": "certificate-expired", "certificate expiry": "certificate-expired",
    "expired certificate": "certificate-expired",
    "disk": "disk-full", "storage": "disk-full", "disk space": "disk-full", "out of disk": "disk-full",
    "late data": "upstream-late", "missing file": "upstream-late", "upstream": "upstream-late",
    "late upstream": "upstream-late", "missing data": "upstream-late",
    "schema": "schema-drift", "schema change": "schema-drift", "format change": "schema-drift",
    "duplicates": "duplicate-data", "duplicate": "duplicate-data", "duplicate records": "duplicate-data",
    "rate limit": "rate-limited", "rate limiting": "rate-limited", "throttling": "rate-limited", "quota": "rate-limited",
    "resource exhaustion": "resource-exhaustion", "connection pool": "resource-exhaustion",
    "connection pool exhaustion": "resource-exhaustion", "resource leak": "resource-exhaustion",
    "lock": "lock-contention", "locking": "lock-contention", "deadlock": "lock-contention",
    "lock timeout": "lock-contention", "contention": "lock-contention",
    "oom": "out-of-memory", "memory": "out-of-memory", "out of memory": "out-of-memory", "memory leak": "out-of-memory",
    "timezone": "timezone-dst", "time zone": "timezone-dst", "dst": "timezone-dst", "time": "timezone-dst",
    "daylight saving": "timezone-dst", "leap second": "timezone-dst", "clock": "timezone-dst",
    "partial": "partial-load", "incomplete load": "partial-load",
    "config": "config-change", "configuration": "config-change", "config change": "config-change",
    "configuration change": "config-change", "misconfiguration": "config-change", "deploy/config change": "config-change",
    "config/deploy change": "config-change", "configuration error": "config-change", "config push": "config-change",
    "deploy": "bad-deploy", "deployment": "bad-deploy", "bad deploy": "bad-deploy", "bug": "bad-deploy",
    "software bug": "bad-deploy", "software": "bad-deploy", "code change": "bad-deploy", "release": "bad-deploy",
    "regression": "bad-deploy", "code bug": "bad-deploy",
    "dependency": "dependency-outage", "dependency failure": "dependency-outage", "third party": "dependency-outage",
    "third-party": "dependency-outage", "vendor": "dependency-outage", "upstream outage": "dependency-outage",
    "cloud provider": "dependency-outage", "external dependency": "dependency-outage",
    "networking": "network", "network failure": "network", "network partition": "network",
    "name resolution": "dns", "dns failure": "dns",
    "db": "database", "database failure": "database", "data store": "database", "datastore": "database",
    "load": "capacity", "overload": "capacity", "capacity planning": "capacity", "traffic spike": "capacity",
    "scaling": "capacity", "cascading failure": "capacity",
    "bad data": "data-quality", "data": "data-quality", "data quality": "data-quality", "input data": "data-quality",
    "human": "human-error", "operator error": "human-error", "human error": "human-error",
    "manual error": "human-error", "process": "human-error",
    "hardware failure": "hardware", "power": "hardware", "power outage": "hardware", "infrastructure": "hardware",
}


def canonical_slug(label: str) -> str:
    """The category slug an import label means: a known slug, name or alias, else its own slug."""
    cleaned = " ".join(label.strip().lower().replace("_", " ").split())
    known = {slug: slug for slug, _, _ in DEFAULT_CATEGORIES}
    known.update({name.lower(): slug for slug, name, _ in DEFAULT_CATEGORIES})
    slug = slugify(cleaned)
    if slug in known:
        return slug
    return known.get(cleaned) or ALIASES.get(cleaned) or ALIASES.get(cleaned.replace("-", " ")) or slug
