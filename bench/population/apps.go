package population

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

// CheatApps is the one place the workload's cheat packages come from. It is
// kept consistent with the cheat_apps seed list the rules use
// (features/lists); switch it there if that list moves.
var CheatApps = []CheatApp{
	// Fake GPS and virtual location.
	{"com.lexa.fakegps", CheatFakeGPS},
	{"com.incorporateapps.fakegps.fre", CheatFakeGPS},
	{"com.blogspot.newapphorizons.fakegps", CheatFakeGPS},
	{"com.theappninjas.fakegpsjoystick", CheatFakeGPS},
	{"com.evezzon.fakegps", CheatFakeGPS},
	{"com.gsmartstudio.fakegps", CheatFakeGPS},
	{"com.rosteam.gpsemulator", CheatFakeGPS},
	{"ru.gavrikov.mocklocations", CheatFakeGPS},
	{"com.just4funtools.fakegpslocationprofessional", CheatFakeGPS},
	{"com.divi.fakeGPS", CheatFakeGPS},
	{"com.lerist.fakelocation", CheatFakeGPS},
	{"com.txy.anywhere", CheatFakeGPS},
	// Cloners, multi-open, virtual spaces and phone-in-phone VMs.
	{"com.lbe.parallel.intl", CheatCloner},
	{"com.parallel.space.lite", CheatCloner},
	{"com.parallel.space.pro", CheatCloner},
	{"com.excelliance.dualaid", CheatCloner},
	{"com.excelliance.multiaccounts", CheatCloner},
	{"com.applisto.appcloner", CheatCloner},
	{"io.va.exposed", CheatCloner},
	{"io.virtualapp", CheatCloner},
	{"com.lody.virtual", CheatCloner},
	{"com.bly.dkplat", CheatCloner},
	{"com.polestar.super.clone", CheatCloner},
	{"com.jiubang.commerce.gomultiple", CheatCloner},
	{"com.ludashi.dualspace", CheatCloner},
	{"do.multiple.cloner", CheatCloner},
	{"com.qihoo.magic", CheatCloner},
	{"com.vmos.pro", CheatCloner},
	{"com.vmos.glb", CheatCloner},
	{"com.x8zs.sandbox", CheatCloner},
	{"io.twoyi", CheatCloner},
	// Hook frameworks, root managers and their hiding tools.
	{"de.robv.android.xposed.installer", CheatHook},
	{"org.meowcat.edxposed.manager", CheatHook},
	{"org.lsposed.manager", CheatHook},
	{"org.lsposed.lspatch", CheatHook},
	{"me.weishu.exp", CheatHook},
	{"com.topjohnwu.magisk", CheatHook},
	{"io.github.vvb2060.magisk", CheatHook},
	{"me.weishu.kernelsu", CheatHook},
	{"eu.chainfire.supersu", CheatHook},
	{"com.noshufou.android.su", CheatHook},
	{"com.koushikdutta.superuser", CheatHook},
	{"com.saurik.substrate", CheatHook},
	{"re.frida.server", CheatHook},
	{"com.chelpus.lackypatch", CheatHook},
	{"com.tsng.hidemyapplist", CheatHook},
	{"com.formyhm.hideroot", CheatHook},
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
