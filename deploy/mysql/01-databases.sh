#!/bin/sh
# Run once by the mysql image's entrypoint on an empty data directory (docker-entrypoint-initdb.d):
# one database and one user per service (DESIGN §4: each service owns its DB and reaches only it).
# A shell script rather than plain .sql so the passwords come from the environment (.env), never
# from a committed file.
set -eu
: "${ORDER_DB_PASSWORD:?}" "${PAYMENT_DB_PASSWORD:?}" "${NOTIFICATION_DB_PASSWORD:?}"

mysql --protocol=socket -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
CREATE DATABASE IF NOT EXISTS \`${ORDER_DB_NAME}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE DATABASE IF NOT EXISTS \`${PAYMENT_DB_NAME}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE DATABASE IF NOT EXISTS \`${NOTIFICATION_DB_NAME}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE USER IF NOT EXISTS '${ORDER_DB_USER}'@'%' IDENTIFIED BY '${ORDER_DB_PASSWORD}';
CREATE USER IF NOT EXISTS '${PAYMENT_DB_USER}'@'%' IDENTIFIED BY '${PAYMENT_DB_PASSWORD}';
CREATE USER IF NOT EXISTS '${NOTIFICATION_DB_USER}'@'%' IDENTIFIED BY '${NOTIFICATION_DB_PASSWORD}';
GRANT ALL PRIVILEGES ON \`${ORDER_DB_NAME}\`.* TO '${ORDER_DB_USER}'@'%';
GRANT ALL PRIVILEGES ON \`${PAYMENT_DB_NAME}\`.* TO '${PAYMENT_DB_USER}'@'%';
GRANT ALL PRIVILEGES ON \`${NOTIFICATION_DB_NAME}\`.* TO '${NOTIFICATION_DB_USER}'@'%';
FLUSH PRIVILEGES;
SQL
