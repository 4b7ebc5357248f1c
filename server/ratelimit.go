package server

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/riskd/riskd/auth"
)

// limiters keeps a token bucket per token: one for each static token, one
// per subject account. Subjects are many, so their buckets live in an LRU;
// an evicted bucket starts full again, which errs on the side of the caller.
type limiters struct {
	service, user, subject rate.Limit

	mu     sync.Mutex
	static map[string]*rate.Limiter // guarded by mu; by token name
	subj   *lru.Cache[string, *rate.Limiter]
}

func newLimiters(service, user, subject float64) *limiters {
	c, _ := lru.New[string, *rate.Limiter](100_000)
	return &limiters{service: rate.Limit(service), user: rate.Limit(user), subject: rate.Limit(subject),
		static: map[string]*rate.Limiter{}, subj: c}
}

func (l *limiters) allow(p auth.Principal) bool {
	limit := l.user
	switch p.Role {
	case auth.RoleService:
		limit = l.service
	case auth.RoleSubject:
		limit = l.subject
	}
	if limit <= 0 {
		return true
	}
	burst := max(1, int(2*limit))
	if p.Role == auth.RoleSubject {
		lim, ok := l.subj.Get(p.AccountID)
		if !ok {
			lim = rate.NewLimiter(limit, burst)
			l.subj.Add(p.AccountID, lim)
		}
		return lim.Allow()
	}
	l.mu.Lock()
	lim, ok := l.static[p.Name]
	if !ok {
		lim = rate.NewLimiter(limit, burst)
		l.static[p.Name] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}
