package population

import (
	"strings"

	"github.com/riskd/riskd/features/lists"
)

// CheatKind says what a cheating package does.
type CheatKind uint8

// Kinds of cheating packages.
const (
	CheatFakeGPS CheatKind = iota + 1 // fake GPS / virtual location
	CheatCloner                       // app cloners, multi-open, virtual spaces and VMs
	CheatHook                         // Xposed/LSPosed/Magisk/Frida and root tooling
)

// CheatApp is a real Android package that lets a user fake a location, run a
// cloned app or hook one.
type CheatApp struct {
	Package string
	Kind    CheatKind
}

// CheatApps are the workload's cheat packages: exactly the cheat_apps seed
// list the rules read (features/lists.DefaultCheatApps), each classified by
// what it does, so that what the workload installs is what riskd looks for.
var CheatApps = classify(lists.DefaultCheatApps)

func classify(pkgs []string) []CheatApp {
	out := make([]CheatApp, 0, len(pkgs))
	for _, p := range pkgs {
		out = append(out, CheatApp{Package: p, Kind: kindOf(p)})
	}
	return out
}

// kindOf tells a cheat package's kind from its name: location spoofers name
// themselves after GPS or location, cloners after spaces, copies and
// virtual machines; what is left is root and hook tooling.
func kindOf(pkg string) CheatKind {
	p := strings.ToLower(pkg)
	for _, w := range []string{"gps", "locat", "mock", "lockito", "joystick", "anywhere"} {
		if strings.Contains(p, w) {
			return CheatFakeGPS
		}
	}
	for _, w := range []string{"parallel", "multi", "dual", "clon", "virtual", "space", "vmos", "sandbox", "dkplat", "qihoo.magic", "waxmoon", "twoyi", "va.exposed"} {
		if strings.Contains(p, w) {
			return CheatCloner
		}
	}
	return CheatHook
}

// CheatPackages returns the package names of CheatApps of kind k, or of every
// kind when k is 0.
func CheatPackages(k CheatKind) []string {
	var out []string
	for _, a := range CheatApps {
		if k == 0 || a.Kind == k {
			out = append(out, a.Package)
		}
	}
	return out
}

// BenignApps are real, common Android packages on phones in China. None is a
// cheat app; installed lists are drawn from here.
var BenignApps = []string{
	"com.tencent.mm", "com.tencent.mobileqq", "com.eg.android.AlipayGphone",
	"com.taobao.taobao", "com.tmall.wireless", "com.jingdong.app.mall",
	"com.xunmeng.pinduoduo", "com.ss.android.ugc.aweme", "com.smile.gifmaker",
	"com.kuaishou.nebula", "com.sankuai.meituan", "me.ele", "com.sdu.didi.psnger",
	"com.autonavi.minimap", "com.baidu.BaiduMap", "com.baidu.searchbox",
	"com.sina.weibo", "com.xingin.xhs", "tv.danmaku.bili", "com.netease.cloudmusic",
	"com.tencent.qqmusic", "com.kugou.android", "com.UCMobile", "com.tencent.mtt",
	"com.zhihu.android", "com.dianping.v1", "ctrip.android.view", "com.MobileTicket",
	"com.alibaba.android.rimet", "com.tencent.wework", "com.ss.android.lark",
	"com.tencent.wemeet.app", "com.tencent.qqlive", "com.youku.phone", "com.qiyi.video",
	"com.tencent.tmgp.sgame", "com.miHoYo.Yuanshen", "com.icbc", "com.chinamworld.main",
	"cmb.pb", "com.unionpay", "com.android.bankabc", "com.tencent.weread",
	"com.moji.mojiweather", "com.achievo.vipshop", "com.suning.mobile.ebuy",
	"com.taobao.idlefish", "com.hpbr.bosszhipin", "com.lemon.lv",
	"com.ss.android.article.news", "com.baidu.netdisk", "com.tencent.androidqqmail",
	"com.ximalaya.ting.android", "com.dragon.read", "com.tencent.karaoke",
}

// HookFrameworks are the names an app's own detection reports in
// device.hook_frameworks.
var HookFrameworks = []string{"xposed", "lsposed", "edxposed", "frida", "substrate", "taichi"}
