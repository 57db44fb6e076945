package throttle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Need is what one configured signal needs on one server, and whether it
// works there.
type Need struct {
	Server    string // "primary" or a replica's name
	Signal    string // "replica lag", "load", "history length"
	Reads     string // what each check sends
	Privilege string // the privilege it needs; "" = none
	Grant     string // the statement that would give it to this user
	Problem   string // "" when it works; else what is wrong, in one line
}

// privilegeErrors are the server's refusals: global privilege, table,
// column and database access denied.
var privilegeErrors = map[uint16]bool{1227: true, 1142: true, 1143: true, 1044: true}

func isPrivilegeErr(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && privilegeErrors[me.Number]
}

// Preflight runs every configured signal's read once, as the first check
// would, and lists for each the privilege it needs and what, if anything,
// stops it from working (a missing privilege, a server that is not a
// replica, a missing heartbeat row, an unknown status variable). The error
// is one line naming every problem; nil when all work. Call it before the
// first delete.
func (t *Throttler) Preflight(ctx context.Context) ([]Need, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	var needs []Need
	t.mu.Lock()
	lim := t.limitsLocked()
	t.mu.Unlock()
	var primaryID int64 = -1
	if t.cfg.Primary != nil {
		pv, user, err := whoAmI(ctx, t.cfg.Primary)
		problem := ""
		if err != nil {
			problem = "cannot read: " + oneLine(err.Error())
		} else if t.heartbeat != "" {
			if err := t.cfg.Primary.QueryRowContext(ctx, "SELECT @@server_id").Scan(&primaryID); err != nil {
				problem = "cannot read @@server_id: " + oneLine(err.Error())
			}
		}
		needs = append(needs, t.primaryNeeds(ctx, lim, pv, user, problem)...)
	}
	for _, rep := range t.replicas {
		needs = append(needs, t.replicaNeed(ctx, rep, primaryID))
	}
	var problems []string
	for _, n := range needs {
		if n.Problem != "" {
			problems = append(problems, fmt.Sprintf("%s %s: %s", n.Server, n.Signal, n.Problem))
		}
	}
	if len(problems) > 0 {
		return needs, fmt.Errorf("throttle checks cannot run: %s", strings.Join(problems, "; "))
	}
	return needs, nil
}

// whoAmI reads the server version and the account as the server sees it;
// neither needs a privilege.
func whoAmI(ctx context.Context, db *sql.DB) (version, user string, err error) {
	err = db.QueryRowContext(ctx, "SELECT VERSION(), CURRENT_USER()").Scan(&version, &user)
	return version, user, err
}

// grantTo formats CURRENT_USER()'s "name@host" for a GRANT statement.
func grantTo(priv, on, user string) string {
	name, host := user, "%"
	if i := strings.LastIndex(user, "@"); i >= 0 {
		name, host = user[:i], user[i+1:]
	}
	return fmt.Sprintf("GRANT %s ON %s TO '%s'@'%s'", priv, on, name, host)
}

func (t *Throttler) primaryNeeds(ctx context.Context, lim limits, version, user, problem string) []Need {
	var needs []Need
	names := lim.statusNames()
	if len(names) > 0 {
		n := Need{Server: "primary", Signal: "load", Reads: "SHOW GLOBAL STATUS (" + strings.Join(names, ", ") + ")", Problem: problem}
		if problem == "" {
			vals, err := showStatus(ctx, t.cfg.Primary, names)
			if err != nil {
				n.Problem = oneLine(err.Error())
			} else {
				var bad []string
				for _, name := range names {
					v, ok := vals[strings.ToLower(name)]
					if !ok {
						bad = append(bad, "no status variable "+name)
					} else if _, err := strconv.ParseInt(v, 10, 64); err != nil {
						bad = append(bad, fmt.Sprintf("%s is %q, not a number", name, v))
					}
				}
				n.Problem = strings.Join(bad, ", ")
			}
		}
		needs = append(needs, n)
	}
	if lim.maxHistory > 0 {
		n := Need{Server: "primary", Signal: "history length", Reads: "SHOW GLOBAL STATUS (" + HistoryStatus + ")", Problem: problem}
		if problem == "" {
			useMetrics := t.cfg.HistoryFromMetrics
			if !useMetrics {
				vals, err := showStatus(ctx, t.cfg.Primary, []string{HistoryStatus})
				if err != nil {
					n.Problem = oneLine(err.Error())
				}
				_, has := vals[strings.ToLower(HistoryStatus)]
				useMetrics = err == nil && !has
			}
			if useMetrics {
				n.Reads, n.Privilege, n.Grant = historyMetricsSQL, "PROCESS", grantTo("PROCESS", "*.*", user)
				var c sql.NullInt64
				err := t.cfg.Primary.QueryRowContext(ctx, historyMetricsSQL).Scan(&c)
				switch {
				case isPrivilegeErr(err):
					n.Problem = "missing PROCESS: " + oneLine(err.Error())
				case errors.Is(err, sql.ErrNoRows):
					n.Problem = "INNODB_METRICS has no trx_rseg_history_len"
				case err != nil:
					n.Problem = oneLine(err.Error())
				}
			}
		}
		needs = append(needs, n)
	}
	return needs
}

// replicaPrivilege is what SHOW REPLICA STATUS needs on a server of this
// version: MariaDB moved it from REPLICATION CLIENT to REPLICATION SLAVE
// ADMIN in 10.5.2 and to SLAVE MONITOR (alias REPLICA MONITOR) in 10.5.9;
// MySQL keeps REPLICATION CLIENT.
func replicaPrivilege(version string) string {
	if !strings.Contains(strings.ToLower(version), "mariadb") {
		return "REPLICATION CLIENT"
	}
	var v [3]int
	for i, p := range strings.SplitN(strings.SplitN(version, "-", 2)[0], ".", 3) {
		v[i], _ = strconv.Atoi(p)
	}
	switch {
	case v[0] < 10 || v[0] == 10 && v[1] < 5:
		return "REPLICATION CLIENT"
	case v[0] == 10 && v[1] == 5 && v[2] < 9:
		return "REPLICATION SLAVE ADMIN"
	default:
		return "SLAVE MONITOR"
	}
}

func (t *Throttler) replicaNeed(ctx context.Context, rep *replica, primaryID int64) Need {
	n := Need{Server: rep.Name, Signal: "replica lag"}
	version, user, err := whoAmI(ctx, rep.DB)
	if err != nil {
		n.Problem = "cannot read: " + oneLine(err.Error())
		return n
	}
	if t.heartbeat != "" {
		n.Reads = "SELECT ts FROM " + t.heartbeat + " WHERE server_id = <primary's>"
		n.Privilege = "SELECT on " + t.cfg.HeartbeatTable
		n.Grant = grantTo("SELECT", t.heartbeat, user)
		if primaryID < 0 {
			n.Problem = "the primary's server_id is unknown"
			return n
		}
		var ts any
		err := rep.DB.QueryRowContext(ctx, fmt.Sprintf("SELECT ts FROM %s WHERE server_id = %d", t.heartbeat, primaryID)).Scan(&ts)
		switch {
		case isPrivilegeErr(err):
			n.Problem = "missing SELECT on " + t.cfg.HeartbeatTable + ": " + oneLine(err.Error())
		case errors.Is(err, sql.ErrNoRows):
			n.Problem = fmt.Sprintf("no row for the primary (server_id %d) in %s: is the heartbeat written on the primary?", primaryID, t.cfg.HeartbeatTable)
		case err != nil:
			n.Problem = oneLine(err.Error())
		}
		return n
	}
	priv := replicaPrivilege(version)
	n.Reads, n.Privilege, n.Grant = "SHOW REPLICA STATUS (or SHOW SLAVE STATUS)", priv, grantTo(priv, "*.*", user)
	rr := replicaReading{name: rep.Name}
	t.readSlaveStatus(ctx, rep, &rr)
	switch {
	case isPrivilegeErr(rr.err):
		n.Problem = "missing " + priv + ": " + oneLine(rr.err.Error())
	case rr.err != nil:
		n.Problem = oneLine(rr.err.Error())
	}
	return n
}
