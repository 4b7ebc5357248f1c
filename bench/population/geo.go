package population

import "math"

// City is a place accounts live and orgs have sites.
type City struct {
	Name     string
	Lat, Lon float64
}

// Cities are where the population lives (mainland China, where the app is
// used).
var Cities = []City{
	{"Beijing", 39.9042, 116.4074}, {"Shanghai", 31.2304, 121.4737},
	{"Guangzhou", 23.1291, 113.2644}, {"Shenzhen", 22.5431, 114.0579},
	{"Chengdu", 30.5728, 104.0668}, {"Hangzhou", 30.2741, 120.1551},
	{"Wuhan", 30.5928, 114.3055}, {"Xi'an", 34.3416, 108.9398},
	{"Chongqing", 29.5630, 106.5516}, {"Nanjing", 32.0603, 118.7969},
	{"Tianjin", 39.3434, 117.3616}, {"Suzhou", 31.2990, 120.5853},
	{"Changsha", 28.2282, 112.9388}, {"Zhengzhou", 34.7466, 113.6254},
	{"Shenyang", 41.8057, 123.4315}, {"Qingdao", 36.0671, 120.3826},
	{"Dalian", 38.9140, 121.6147}, {"Xiamen", 24.4798, 118.0894},
	{"Kunming", 25.0389, 102.7183}, {"Harbin", 45.8038, 126.5340},
	{"Jinan", 36.6512, 117.1201}, {"Fuzhou", 26.0745, 119.2965},
	{"Hefei", 31.8206, 117.2272}, {"Nanning", 22.8170, 108.3665},
	{"Urumqi", 43.8256, 87.6168}, {"Lanzhou", 36.0611, 103.8343},
}

// AttackerCities are where stolen credentials are used from: far from any
// account's home, so a takeover from there implies impossible travel.
var AttackerCities = []City{
	{"Lagos", 6.5244, 3.3792}, {"Moscow", 55.7558, 37.6173},
	{"Sao Paulo", -23.5505, -46.6333}, {"Kyiv", 50.4501, 30.5234},
	{"Bucharest", 44.4268, 26.1025}, {"Jakarta", -6.2088, 106.8456},
	{"Manila", 14.5995, 120.9842}, {"Phnom Penh", 11.5564, 104.9282},
	{"Istanbul", 41.0082, 28.9784}, {"Los Angeles", 34.0522, -118.2437},
}

// Offset returns the point d metres from (lat, lon) at bearing deg.
func Offset(lat, lon, d, bearingDeg float64) (float64, float64) {
	const r = 6371000.0
	br := bearingDeg * math.Pi / 180
	la := lat * math.Pi / 180
	lo := lon * math.Pi / 180
	ad := d / r
	la2 := math.Asin(math.Sin(la)*math.Cos(ad) + math.Cos(la)*math.Sin(ad)*math.Cos(br))
	lo2 := lo + math.Atan2(math.Sin(br)*math.Sin(ad)*math.Cos(la), math.Cos(ad)-math.Sin(la)*math.Sin(la2))
	return la2 * 180 / math.Pi, math.Remainder(lo2*180/math.Pi, 360)
}

// DistanceKm is the great-circle distance between two points.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}
