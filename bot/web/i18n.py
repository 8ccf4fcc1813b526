"""The dashboard's words in Simplified Chinese; English is the key itself."""

from __future__ import annotations

from collections.abc import Callable

ZH = {
    "Channel": "渠道",
    "Any channel": "全部渠道",
    "Staff alerts that could not be sent": "未能发出的员工提醒",
    "Refused for good (a wrong key, secret or group): not retried. Fix the setting, then send them again.": (
        "接收方拒收了这些提醒（密钥、签名或群设置有误），因此不再重试。请修正设置后再重新发送。"
    ),
    "target": "发往",
    "Staff alerts on their way": "正在发送的员工提醒",
    "waiting": "待发",
    "oldest": "最早",
    "last error": "最近的错误",
    "error": "错误",
    "when": "时间",
    "Send again": "重新发送",
    "Leads": "线索",
    "Overview": "概览",
    "Sign in": "登录",
    "Sign out": "退出",
    "Name": "用户名",
    "Password": "密码",
    "Wrong name or password.": "用户名或密码错误。",
    "Too many failed attempts. Try again after %(when)s.": "失败次数过多，请在 %(when)s 之后再试。",
    "Too many failed attempts from this address. Try again in a few minutes.": (
        "此地址失败次数过多，请几分钟后再试。"
    ),
    "The form has expired. Please try again.": "表单已过期，请重试。",
    "Search company, contact or phone": "搜索单位、联系人或电话",
    "Search": "搜索",
    "Any status": "全部状态",
    "Any scheme": "全部认证",
    "Leads and enquiries": "线索和咨询",
    "Full leads": "完整线索",
    "Enquiries": "咨询",
    "Newest first": "最新在前",
    "Oldest first": "最早在前",
    "Recently updated": "最近更新",
    "Company A–Z": "单位名称",
    "By status": "按状态",
    "Export CSV": "导出 CSV",
    "Clear": "清除",
    "No leads match.": "没有符合条件的线索。",
    "%(n)s leads": "共 %(n)s 条",
    "more than %(n)s leads": "超过 %(n)s 条",
    "Page %(page)s of %(pages)s": "第 %(page)s / %(pages)s 页",
    "Previous": "上一页",
    "Next": "下一页",
    "Reference": "编号",
    "Created": "创建",
    "Company": "单位",
    "Contact": "联系人",
    "Phone": "电话",
    "E-mail": "邮箱",
    "City": "城市",
    "Headcount": "人数",
    "Sites": "场所",
    "Timeline": "计划时间",
    "Schemes": "认证",
    "Status": "状态",
    "Assigned": "负责人",
    "Kind": "类型",
    "Question": "问题",
    "Prospect's note": "客户备注",
    "Self-check gaps": "自测未满足的条件",
    "Telegram": "Telegram",
    "Consent": "同意隐私说明",
    "Change status": "修改状态",
    "Save": "保存",
    "Assign to me": "分配给我",
    "Add a note": "添加备注",
    "Add note": "添加备注",
    "History": "记录",
    "Transcript (latest)": "对话记录（最近）",
    "No history yet.": "暂无记录。",
    "Personal data deleted at the prospect's request on %(when)s.": "客户已于 %(when)s 要求删除个人信息。",
    "status: %(old)s → %(new)s": "状态：%(old)s → %(new)s",
    "assigned to %(who)s": "分配给 %(who)s",
    "note": "备注",
    "Leads per day (last %(days)s days)": "每日线索（最近 %(days)s 天）",
    "Leads per week": "每周线索",
    "By scheme (last %(days)s days)": "按认证（最近 %(days)s 天）",
    "All leads by status": "全部线索（按状态）",
    "Flows (last %(days)s days)": "流程（最近 %(days)s 天）",
    "started": "开始",
    "reached": "到达",
    "dropped": "流失",
    "step": "步骤",
    "FAQ answers": "常见问题命中",
    "Not answered": "未能回答的问题",
    "Unsure (topics offered)": "不确定的问题（给出了候选）",
    "None.": "无。",
    "Back to the list": "返回列表",
    "lead": "线索",
    "enquiry": "咨询",
    "new": "新线索",
    "contacted": "已联系",
    "qualified": "已确认需求",
    "won": "已成交",
    "lost": "已流失",
    "Not found": "未找到",
    "That lead does not exist.": "该线索不存在。",
    "Forbidden": "禁止访问",
    "Refused: the form's security token is missing or wrong. Reload the page and try again.": (
        "已拒绝：表单的安全令牌缺失或错误。请刷新页面后重试。"
    ),
    "Leave the note empty? Type something first.": "备注不能为空。",
    "total": "合计",
}


def translator(locale: str) -> Callable[..., str]:
    table = ZH if locale == "zh" else {}

    def gettext(text: str, **values: object) -> str:
        out = table.get(text, text)
        return out % values if values else out

    return gettext
