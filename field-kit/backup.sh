#!/bin/bash
# The deployment guide's backup script, adapted to agent_mesh's data
# folder (docs/OPERATIONS.md "Backup and restore"). Run it, as the guide
# does, from the daemon's data folder (agent-mesh-data/gateway,
# /var/lib/agent-mesh/node, ...):
#
#     cd agent-mesh-data/gateway && /path/to/field-kit/backup.sh
#
# What changed from the guide and why:
#  * keys: the guide copies keys/; our folder keeps its key at the top
#    (identity.pem, where every command and unit names it) with the
#    site's network key (network.key), how this node joined (join.json)
#    and its certificate (provision.json), all of which are keys too:
#    they go into the backup's keys/ as the guide's do, and also where
#    `agent-mesh restore` takes them (the top of the archive).
#  * .env: the one in this folder, else ENV_FILE, else the .env of the
#    folder the daemon starts in (two levels up in the default layout).
#  * audit: the rotated files too (audit.log.1, ...): the hash chain
#    runs across them.
#  * everything is written 0600 / 0700: it holds private keys.
# BACKUP_ROOT (default /backup/agent_mesh) moves the backups.
set -eu
umask 077
BACKUP_DIR=${BACKUP_ROOT:-/backup/agent_mesh}/$(date +%Y%m%d)
if [ ! -f identity.pem ]; then
    echo "backup.sh: run it in the daemon's data folder (no identity.pem in $PWD)" >&2
    exit 2
fi
mkdir -p "$BACKUP_DIR/keys"

# Backup trust store
if [ -f trust/trust_store.json ]; then
    mkdir -p "$BACKUP_DIR/trust"
    cp trust/trust_store.json "$BACKUP_DIR/trust/"
fi

# Backup keys
for f in identity.pem network.key join.json provision.json *.pem; do
    [ -f "$f" ] || continue
    cp "$f" "$BACKUP_DIR/keys/"
    cp "$f" "$BACKUP_DIR/"
done

# Backup audit logs
if [ -d audit ]; then
    mkdir -p "$BACKUP_DIR/audit"
    cp audit/audit.log* "$BACKUP_DIR/audit/" 2>/dev/null || true
fi

# Backup config
ENV=${ENV_FILE:-}
if [ -z "$ENV" ] && [ -f .env ]; then ENV=.env; fi
if [ -z "$ENV" ] && [ -f ../../.env ]; then ENV=../../.env; fi
if [ -n "$ENV" ]; then cp "$ENV" "$BACKUP_DIR/.env"; fi
if [ -f roles.json ]; then cp roles.json "$BACKUP_DIR/"; fi
if [ -d tools ]; then cp -r tools "$BACKUP_DIR/"; fi

# Create archive (the folder's contents at its top: agent-mesh restore reads it)
tar czf "$BACKUP_DIR.tar.gz" -C "$BACKUP_DIR" .
chmod 600 "$BACKUP_DIR.tar.gz"
echo "backup in $BACKUP_DIR.tar.gz (restore: agent-mesh restore --input $BACKUP_DIR.tar.gz --data DIR)"
