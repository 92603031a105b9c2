"""The console's words in English and Chinese: one catalogue, and which language a request
gets.

``?lang=zh`` or ``?lang=en`` chooses (and the app remembers it in the ``console_lang``
cookie); otherwise the cookie, otherwise the browser's ``Accept-Language`` (Chinese when
it prefers any ``zh``), otherwise English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

LANGUAGES = ("en", "zh")
LANG_COOKIE = "console_lang"

# key -> (English, Chinese)
CATALOGUE: Mapping[str, tuple[str, str]] = {
    "app.title": ("Headend console", "前端运维控制台"),
    "nav.channels": ("Channels", "频道"),
    "nav.edges": ("Edges", "边缘节点"),
    "nav.jobs": ("Jobs", "转码任务"),
    "nav.guide": ("Guide", "节目单"),
    "nav.subscribers": ("Subscribers", "用户"),
    "nav.helpdesk": ("Helpdesk", "客服查询"),
    "nav.reports": ("Reports", "收视报表"),
    "nav.alerts": ("Alerts", "紧急警报"),
    "login.title": ("Log in", "登录"),
    "login.key": ("API key", "API 密钥"),
    "login.submit": ("Log in", "登录"),
    "login.bad_key": ("That key was not accepted.", "该密钥无效。"),
    "logout": ("Log out", "退出"),
    "signed_in_as": ("Signed in as", "当前身份"),
    "error.title": ("Error", "错误"),
    "error.back": ("Back", "返回"),
    "unavailable": ("Not available", "暂不可用"),
    "updated": ("Updated", "更新于"),
    "none": ("None", "无"),
    "state.live": ("live", "直播中"),
    "state.backup": ("backup source", "备用源"),
    "state.slate": ("slate", "垫片"),
    "state.stopped": ("stopped", "已停止"),
    "state.starting": ("starting", "启动中"),
    "state.degraded": ("degraded", "降级"),
    "state.recovering": ("recovering", "恢复中"),
    "state.unknown": ("unknown", "未知"),
    "ch.channel": ("Channel", "频道"),
    "ch.state": ("State", "状态"),
    "ch.segment_age": ("Segment age", "分片延迟"),
    "ch.bitrates": ("Bitrate per rung", "各档码率"),
    "ch.node": ("Node", "节点"),
    "ch.viewers": ("Viewers now", "当前观众"),
    "ch.history": ("Source history", "信源切换记录"),
    "ch.viewers_24h": ("Viewers, last 24 hours", "最近 24 小时观众"),
    "ch.from": ("From", "从"),
    "ch.to": ("To", "到"),
    "ch.reason": ("Reason", "原因"),
    "ch.time": ("Time", "时间"),
    "ch.source": ("Source", "信源"),
    "edge.region": ("Region", "地区"),
    "edge.province": ("Province", "省"),
    "edge.city": ("City", "市"),
    "edge.county": ("County", "区县"),
    "edge.edge": ("Edge (village)", "边缘节点 (村)"),
    "edge.health": ("Health", "健康"),
    "edge.load": ("Load", "负载"),
    "edge.sessions": ("Sessions", "会话"),
    "edge.hit_ratio": ("Cache hit ratio", "缓存命中率"),
    "edge.uplink": ("Uplink use", "上行占用"),
    "edge.drain": ("Drain", "排空"),
    "edge.undrain": ("Undrain", "恢复"),
    "edge.draining": ("draining", "排空中"),
    "health.up": ("up", "正常"),
    "health.degraded": ("degraded", "降级"),
    "health.down": ("down", "故障"),
    "health.unknown": ("unknown", "未知"),
    "job.queued": ("Queued", "排队中"),
    "job.running": ("Running", "运行中"),
    "job.dead": ("Dead letters", "死信"),
    "job.job": ("Job", "任务"),
    "job.asset": ("Asset", "资源"),
    "job.progress": ("Progress", "进度"),
    "job.worker": ("Worker", "工作进程"),
    "job.reason": ("Reason", "原因"),
    "job.deliveries": ("Deliveries", "投递次数"),
    "job.retry": ("Retry", "重试"),
    "job.cancel": ("Cancel", "取消"),
    "guide.days_ahead": ("Days ahead", "剩余天数"),
    "guide.gaps": ("Gaps", "空档"),
    "guide.gap_hours": ("Gap hours", "空档小时"),
    "guide.imports": ("Recent imports", "最近导入"),
    "guide.result": ("Result", "结果"),
    "guide.by": ("By", "操作者"),
    "sub.carrier": ("Carrier", "运营商"),
    "sub.counts": ("Subscribers by carrier and status", "按运营商和状态统计用户"),
    "sub.errors": ("Recent provisioning errors", "最近开户错误"),
    "sub.active": ("active", "正常"),
    "sub.suspended": ("suspended", "暂停"),
    "sub.terminated": ("terminated", "已销户"),
    "sub.total": ("total", "合计"),
    "sub.subject": ("Subject", "对象"),
    "sub.message": ("Message", "说明"),
    "help.mac": ("Box MAC address", "机顶盒 MAC 地址"),
    "help.find": ("Look up", "查询"),
    "help.device": ("Box", "机顶盒"),
    "help.subscriber": ("Subscriber", "用户"),
    "help.entitlements": ("Entitlements", "授权"),
    "help.channels": ("Channels it may play now", "当前可看频道"),
    "help.leases": ("Live leases", "当前播放"),
    "help.events": ("Latest requests", "最近请求"),
    "help.allowed": ("allowed", "允许"),
    "help.refused": ("refused", "拒绝"),
    "help.kind": ("Request", "请求"),
    "help.outcome": ("Outcome", "结果"),
    "help.why": ("Why", "原因"),
    "help.status": ("Status", "状态"),
    "help.model": ("Model", "型号"),
    "help.region": ("Region", "地区"),
    "help.max_streams": ("Max streams", "最大并发"),
    "help.service_end": ("Service ends", "服务到期"),
    "help.valid": ("Valid", "有效期"),
    "kind.LOGIN": ("login", "登录"),
    "kind.AUTHORIZE": ("authorize", "鉴权"),
    "kind.START_SESSION": ("start stream", "开始播放"),
    "kind.END_SESSION": ("end stream", "结束播放"),
    "deny.NOT_ENTITLED": ("not entitled to this channel", "未订购该频道"),
    "deny.SUBSCRIBER_SUSPENDED": ("the subscriber is suspended", "用户已暂停"),
    "deny.SERVICE_EXPIRED": ("the service period has ended", "服务已到期"),
    "deny.DEVICE_BLOCKED": ("the box is blocked", "机顶盒已被禁用"),
    "deny.UNKNOWN_DEVICE": ("the box is not bound to any subscriber", "机顶盒未绑定用户"),
    "deny.SUBSCRIBER_TERMINATED": ("the subscriber is terminated", "用户已销户"),
    "deny.CARRIER_NOT_ACTIVE": ("the carrier is not active", "运营商未启用"),
    "deny.OTHER": ("refused", "被拒绝"),
    "rep.window": ("Window", "时间范围"),
    "rep.days": ("Days", "天数"),
    "rep.granularity": ("Granularity", "粒度"),
    "rep.group_by": ("Group by", "分组"),
    "rep.hour": ("hour", "小时"),
    "rep.day": ("day", "天"),
    "rep.channel": ("channel", "频道"),
    "rep.carrier": ("carrier", "运营商"),
    "rep.region": ("region", "地区"),
    "rep.channel_id": ("Channel", "频道"),
    "rep.all_channels": ("all", "全部"),
    "rep.bucket": ("Bucket", "时段"),
    "rep.key": ("Key", "对象"),
    "rep.watch_minutes": ("Watch minutes", "收看分钟"),
    "rep.unique_boxes": ("Unique boxes", "独立机顶盒"),
    "rep.peak": ("Peak concurrency", "峰值并发"),
    "rep.show": ("Show", "查询"),
    "rep.csv": ("Download CSV", "下载 CSV"),
    "alert.open": ("Pending, in force or yet to begin", "待确认、生效中或待生效"),
    "alert.ended": ("Ended in the last 7 days", "最近 7 天已结束"),
    "alert.severity": ("Severity", "级别"),
    "alert.headline": ("Headline", "标题"),
    "alert.regions": ("Regions", "地区"),
    "alert.channels": ("Channels", "频道"),
    "alert.all_channels": ("all", "全部"),
    "alert.content": ("Content", "内容"),
    "alert.feed": ("feed", "应急信号源"),
    "alert.card": ("card", "字幕卡"),
    "alert.drill": ("drill", "演练"),
    "alert.state": ("State", "状态"),
    "alert.in_force_now": ("in force now", "正在生效"),
    "alert.from": ("In force from", "生效自"),
    "alert.until": ("In force until", "生效至"),
    "alert.until_cancelled": ("until cancelled", "直至取消"),
    "alert.history": ("History", "操作记录"),
    "alert.step": ("Step", "操作"),
    "alert.by": ("By", "操作者"),
    "alert.key_id": ("Key id", "密钥 ID"),
    "alert.reason": ("Reason", "原因"),
    "alert.cancel": ("Cancel alert", "取消警报"),
    "astate.pending": ("pending confirmation", "待确认"),
    "astate.confirmed": ("confirmed", "已确认"),
    "astate.cancelled": ("cancelled", "已取消"),
    "astate.expired": ("expired (not confirmed)", "已过期 (未确认)"),
    "sev.minor": ("minor", "一般"),
    "sev.moderate": ("moderate", "较重"),
    "sev.severe": ("severe", "严重"),
    "sev.extreme": ("extreme", "特别严重"),
    "step.issue": ("issued", "发布"),
    "step.confirm": ("confirmed", "确认"),
    "step.cancel": ("cancelled", "取消"),
    "step.expire": ("expired", "过期"),
    "step.refuse_confirm": ("confirmation refused", "拒绝确认"),
    "banner.in_force": ("Emergency alert in force", "紧急警报生效中"),
    "banner.unknown": ("Alerts in force: not available", "生效中的警报: 暂不可用"),
}

Translate = Callable[[str], str]


def translator(lang: str) -> Translate:
    """``t(key)``: the key's words in ``lang`` (the key itself when it has none)."""
    index = LANGUAGES.index(lang)

    def t(key: str) -> str:
        words = CATALOGUE.get(key)
        return key if words is None else words[index]

    return t


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The request's language: the query's, the cookie's, the browser's, or English."""
    for given in (query, cookie):
        if given in LANGUAGES:
            return given
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"
