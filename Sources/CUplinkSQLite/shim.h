// The system's SQLite 3 (Debian's libsqlite3), for the coordinator's round ledger.
#include <sqlite3.h>
