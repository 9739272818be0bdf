# Sourced by the mysql image's entrypoint once, when the data volume is first initialised
# (not executable on purpose: a sourced script can use the entrypoint's docker_process_sql and
# mysql_error). It creates the dashboard's own read-only user. A .sh rather than a .sql
# because the password comes from the environment (DASHBOARD_DB_PASSWORD, from .env); the
# consumer's user comes from MYSQL_USER and MYSQL_PASSWORD, which the image handles itself.
case "${DASHBOARD_DB_PASSWORD:-}" in
'') mysql_error "DASHBOARD_DB_PASSWORD is not set: run scripts/make-env (see README.md)" ;;
*[!A-Za-z0-9_.-]*) mysql_error "DASHBOARD_DB_PASSWORD may hold only A-Z a-z 0-9 _ . - (scripts/make-env makes such a one)" ;;
esac
mysql_note "creating the read-only user 'dashboard' for ${MYSQL_DATABASE}"
docker_process_sql --database=mysql <<SQL
CREATE USER 'dashboard'@'%' IDENTIFIED BY '${DASHBOARD_DB_PASSWORD}';
GRANT SELECT ON \`${MYSQL_DATABASE}\`.* TO 'dashboard'@'%';
SQL
