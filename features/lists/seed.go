package lists

import (
	"errors"
	"fmt"
	"strings"
)

// CheatApps is the name of the list of Android packages that fake a location,
// clone apps or hook other apps; attendance rules read it.
const CheatApps = "cheat_apps"

// DefaultCheatApps is the seed of the cheat_apps list: fake-GPS apps, app
// cloners / multi-open / virtual spaces, and root, Xposed, LSPosed, Magisk and
// Frida tooling. Analysts extend it through the lists API.
var DefaultCheatApps = []string{
	// Fake GPS / mock location.
	"com.lexa.fakegps",
	"com.incorporateapps.fakegps.fre",
	"com.blogspot.newapphorizons.fakegps",
	"com.theappninjas.fakegpsjoystick",
	"com.theappninjas.gpsjoystick",
	"com.rosteam.gpsemulator",
	"com.lerist.fakelocation",
	"ru.gavrikov.mocklocations",
	"fr.dvilleneuve.lockito",
	"com.evezzon.fakegps",
	"com.just4funtools.fakegpslocationprofessional",
	"com.usefullapps.fakegpslocationpro",
	"com.gsmartstudio.fakegps",
	"com.fakegps.mock",
	"com.marlon.floating.fake.location",
	// App cloners, multi-open and virtual spaces.
	"com.lbe.parallel.intl",
	"com.lbe.parallel.intl.arm64",
	"com.parallel.space.lite",
	"com.parallel.space.pro",
	"com.excelliance.multiaccounts",
	"com.excelliance.dualaid",
	"com.excean.gspace",
	"com.applisto.appcloner",
	"com.ludashi.dualspace",
	"com.polestar.multiaccount",
	"com.bly.dkplat",
	"com.qihoo.magic",
	"com.waxmoon.ma.gp",
	"com.lody.virtual",
	"io.virtualapp",
	"io.va.exposed",
	"com.vmos.pro",
	"com.vmos.glb",
	"com.x8zs.sandbox",
	// Hook frameworks and root tooling.
	"de.robv.android.xposed.installer",
	"org.meowcat.edxposed.manager",
	"org.lsposed.manager",
	"io.github.lsposed.manager",
	"me.weishu.exp",
	"me.weishu.kernelsu",
	"com.topjohnwu.magisk",
	"io.github.huskydg.magisk",
	"eu.chainfire.supersu",
	"com.koushikdutta.superuser",
	"com.noshufou.android.su",
	"com.saurik.substrate",
	"re.frida.server",
	"com.chelpus.lackypatch",
}

// EnsureDefaults creates the cheat_apps list with DefaultCheatApps when it
// does not exist or is empty; the engine calls it at start. A list an
// analyst has filled is left alone.
func (l *Lists) EnsureDefaults() error {
	m, err := l.Meta(CheatApps)
	if errors.Is(err, ErrNotFound) {
		if m, err = l.Create(CheatApps, Plain, CreateOptions{Description: "Android packages that fake a location, clone apps or hook other apps"}); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	} else if err != nil {
		return err
	}
	if m.Count > 0 {
		return nil
	}
	if _, err := l.Load(CheatApps, strings.NewReader(strings.Join(DefaultCheatApps, "\n")), timeZero); err != nil {
		return fmt.Errorf("lists: seed %s: %w", CheatApps, err)
	}
	return nil
}
