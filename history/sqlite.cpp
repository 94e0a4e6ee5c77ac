#include "history/sqlite.h"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>

namespace sluice::history {

namespace {

// The names people search for; the rest print as numbers.
const char* code_name(int code) {
    switch (code) {
        case SQLITE_BUSY: return "SQLITE_BUSY";
        case SQLITE_LOCKED: return "SQLITE_LOCKED";
        case SQLITE_READONLY: return "SQLITE_READONLY";
        case SQLITE_IOERR: return "SQLITE_IOERR";
        case SQLITE_IOERR_WRITE: return "SQLITE_IOERR_WRITE";
        case SQLITE_IOERR_READ: return "SQLITE_IOERR_READ";
        case SQLITE_IOERR_SHORT_READ: return "SQLITE_IOERR_SHORT_READ";
        case SQLITE_IOERR_FSYNC: return "SQLITE_IOERR_FSYNC";
        case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
        case SQLITE_FULL: return "SQLITE_FULL";
        case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
        case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
        case SQLITE_CONSTRAINT_FOREIGNKEY: return "SQLITE_CONSTRAINT_FOREIGNKEY";
        case SQLITE_CONSTRAINT_UNIQUE: return "SQLITE_CONSTRAINT_UNIQUE";
        case SQLITE_CONSTRAINT_CHECK: return "SQLITE_CONSTRAINT_CHECK";
        case SQLITE_CONSTRAINT_NOTNULL: return "SQLITE_CONSTRAINT_NOTNULL";
        case SQLITE_TOOBIG: return "SQLITE_TOOBIG";
        case SQLITE_NOTADB: return "SQLITE_NOTADB";
        case SQLITE_ERROR: return "SQLITE_ERROR";
        default: return nullptr;
    }
}

std::string short_sql(std::string_view sql) {
    std::string s;
    for (char c : sql) {
        if (c == '\n' || c == '\t') c = ' ';
        if (c == ' ' && !s.empty() && s.back() == ' ') continue;
        s += c;
    }
    while (!s.empty() && s.front() == ' ') s.erase(s.begin());
    if (s.size() > 160) s = s.substr(0, 157) + "...";
    return s;
}

}  // namespace

SqlError::SqlError(const std::string& msg, int code, int sys_errno, std::string sql)
    : Error(msg), code_(code), errno_(sys_errno), sql_(std::move(sql)) {}

bool SqlError::disk_full() const {
    return (code_ & 0xff) == SQLITE_FULL || errno_ == ENOSPC || errno_ == EFBIG || errno_ == EDQUOT;
}

// ---- Db

Db::Db(const std::string& path, int flags) : path_(path) {
    if (flags == 0) flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        const int sys = db_ ? sqlite3_system_errno(db_) : 0;
        sqlite3_close(db_);
        db_ = nullptr;
        throw SqlError(path + ": cannot open: " + msg, rc, sys, "");
    }
    sqlite3_extended_result_codes(db_, 1);
}

Db::~Db() {
    // Statements are RAII too and are gone by now; close_v2 would defer if one leaked.
    sqlite3_close_v2(db_);
}

void Db::fail(int rc, std::string_view sql) const {
    const int ext = db_ ? sqlite3_extended_errcode(db_) : rc;
    const int code = ext != 0 ? ext : rc;
    const int sys = db_ ? sqlite3_system_errno(db_) : 0;
    std::string msg = path_ + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    const char* name = code_name(code);
    msg += " (";
    msg += name ? name : "SQLite code " + std::to_string(code);
    if (sys != 0 && (code & 0xff) == SQLITE_IOERR) msg += std::string(", ") + std::strerror(sys);
    msg += ")";
    if (!sql.empty()) msg += " in: " + short_sql(sql);
    throw SqlError(msg, code, sys, std::string(sql));
}

void Db::exec(std::string_view sql) {
    const std::string s(sql);
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    sqlite3_free(err);  // errmsg on the handle says the same
    if (rc != SQLITE_OK) fail(rc, sql);
}

int64_t Db::scalar_i64(std::string_view sql) {
    Stmt st(*this, sql);
    if (!st.step()) throw SqlError(path_ + ": no row from: " + short_sql(sql), SQLITE_ERROR, 0, std::string(sql));
    return st.i64(0);
}

std::string Db::scalar_str(std::string_view sql) {
    Stmt st(*this, sql);
    if (!st.step()) throw SqlError(path_ + ": no row from: " + short_sql(sql), SQLITE_ERROR, 0, std::string(sql));
    return st.str(0);
}

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int64_t Db::changes() const { return sqlite3_changes64(db_); }

// ---- Stmt

Stmt::Stmt(Db& db, std::string_view sql) : db_(db) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql.data(), int(sql.size()), &s_, nullptr);
    if (rc != SQLITE_OK) db_.fail(rc, sql);
}

Stmt::~Stmt() { sqlite3_finalize(s_); }

void Stmt::fail(int rc) const { db_.fail(rc, sqlite3_sql(s_)); }

Stmt& Stmt::bind(int i, int64_t v) {
    if (int rc = sqlite3_bind_int64(s_, i, v); rc != SQLITE_OK) fail(rc);
    return *this;
}
Stmt& Stmt::bind(int i, double v) {
    if (int rc = sqlite3_bind_double(s_, i, v); rc != SQLITE_OK) fail(rc);
    return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
    if (int rc = sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8); rc != SQLITE_OK) fail(rc);
    return *this;
}
Stmt& Stmt::bind(int i, std::optional<double> v) { return v ? bind(i, *v) : bind_null(i); }
Stmt& Stmt::bind_blob(int i, std::span<const uint8_t> v) {
    // A zero-length blob is still a blob (not NULL): SQLite needs a non-null pointer for that.
    static const uint8_t empty = 0;
    if (int rc = sqlite3_bind_blob64(s_, i, v.empty() ? &empty : v.data(), v.size(), SQLITE_STATIC); rc != SQLITE_OK) fail(rc);
    return *this;
}
Stmt& Stmt::bind_null(int i) {
    if (int rc = sqlite3_bind_null(s_, i); rc != SQLITE_OK) fail(rc);
    return *this;
}

bool Stmt::step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    try {
        fail(rc);
    } catch (...) {
        sqlite3_reset(s_);  // after the message is taken: the statement can run again later
        throw;
    }
}

void Stmt::run() {
    while (step()) {}
}

void Stmt::reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
}

bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
int64_t Stmt::i64(int col) const { return sqlite3_column_int64(s_, col); }
double Stmt::f64(int col) const { return sqlite3_column_double(s_, col); }
std::optional<double> Stmt::opt_f64(int col) const {
    if (is_null(col)) return std::nullopt;
    return f64(col);
}
std::string Stmt::str(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, size_t(sqlite3_column_bytes(s_, col))) : std::string();
}
std::span<const uint8_t> Stmt::blob(int col) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, col));
    return {p, p ? size_t(sqlite3_column_bytes(s_, col)) : 0};
}

// ---- Txn

Txn::Txn(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Txn::~Txn() {
    if (!done_ && !sqlite3_get_autocommit(db_.handle())) {
        // Errors here have nowhere to go; SQLite may already have rolled back (e.g. SQLITE_FULL).
        sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

void Txn::commit() {
    db_.exec("COMMIT");
    done_ = true;
}

}  // namespace sluice::history
