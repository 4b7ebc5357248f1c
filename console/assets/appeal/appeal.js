// The appeal page: a subject's own decisions in plain language, in Chinese
// or English, and the appeal form. Only the subject's token is used; the
// API returns nothing about anyone else.
import { call, takeFragmentToken, token, signOut, APIError } from './shared/api.js';
import { h, clear, fmtDate, fmtTime } from './shared/dom.js';

const MAX_STATEMENT = 4000;

const T = {
  en: {
    brand: 'Account decisions',
    title: 'Decisions about your account',
    intro: 'Automated decisions we made about your activity, why we made them, and how to appeal.',
    signedOut: 'Open this page from the app to see the decisions about your account.',
    signedOutHint: 'For your security, sign-in links work for a limited time and only in this browser tab.',
    recent: 'Your recent decisions',
    none: 'There are no decisions about your account.',
    back: '‹ All decisions',
    what: 'What happened',
    why: 'Why',
    noReasons: 'No specific rule applied: the decision followed the usual handling for this kind of action.',
    used: 'Information we used',
    automated: 'This decision was made automatically, without a person taking part.',
    degraded: 'Our systems were busy, so this action got the standard handling for its kind, not an individual assessment.',
    appeal: 'Appeal',
    canAppeal: (d) => `You can appeal this decision until ${d}.`,
    closed: (d) => `The time to appeal this decision ended on ${d}.`,
    statement: 'Tell us what happened',
    statementPh: 'For example: it was me, I was travelling and signed in from a new phone.',
    contact: 'Contact (optional)',
    contactHint: 'An email address or phone number, if you would like us to reach you.',
    submit: 'Submit appeal',
    submitting: 'Submitting…',
    submitted: 'Your appeal was submitted.',
    tooLong: `Please keep your statement under ${MAX_STATEMENT.toLocaleString('en')} characters.`,
    empty: 'Please tell us what happened.',
    yourAppeal: 'Your appeal',
    appealTag: (x) => `Appeal: ${x.toLowerCase()}`,
    filed: (d) => `Filed ${d}`,
    reviewerReason: 'Reviewer’s reason',
    signOut: 'Sign out',
    privacy: 'Only you can see this page. It never shows information about anyone else.',
    decidedOn: (d) => `Decided ${d}`,
    errors: {
      not_found: 'This decision could not be found.',
      unauthenticated: 'Your sign-in has expired. Please open this page again from the app.',
      permission_denied: 'You do not have access to this.',
      already_exists: 'You already have an appeal open for this decision.',
      failed_precondition: 'The time to appeal this decision has ended.',
      invalid_argument: 'Please check what you entered.',
      resource_exhausted: 'Too many requests. Please wait a moment and try again.',
      unavailable: 'The service cannot be reached. Please try again later.',
      other: 'Something went wrong. Please try again.',
    },
    events: {
      EVENT_TYPE_LOGIN: 'sign-in', EVENT_TYPE_REGISTER: 'registration', EVENT_TYPE_PASSWORD_RESET: 'password reset',
      EVENT_TYPE_PAYMENT: 'payment', EVENT_TYPE_ATTENDANCE: 'attendance check-in',
      EVENT_TYPE_DEVICE_REPORT: 'device check', EVENT_TYPE_SERVICE_LOG: 'activity',
    },
    eventTitle: {
      EVENT_TYPE_LOGIN: 'Sign-in', EVENT_TYPE_REGISTER: 'Registration', EVENT_TYPE_PASSWORD_RESET: 'Password reset',
      EVENT_TYPE_PAYMENT: 'Payment', EVENT_TYPE_ATTENDANCE: 'Attendance check-in',
      EVENT_TYPE_DEVICE_REPORT: 'Device check', EVENT_TYPE_SERVICE_LOG: 'Activity',
    },
    outcomes: {
      OUTCOME_ALLOW: 'Allowed', OUTCOME_CHALLENGE: 'Verification requested', OUTCOME_REVIEW: 'Held for review', OUTCOME_DENY: 'Blocked',
    },
    happened: {
      OUTCOME_ALLOW: (e) => `We let your ${e} go through.`,
      OUTCOME_CHALLENGE: (e) => `We asked you to confirm it was you before your ${e} could go through.`,
      OUTCOME_REVIEW: (e) => `We held your ${e} so that a person could check it.`,
      OUTCOME_DENY: (e) => `We blocked your ${e}.`,
    },
    cats: {
      device: 'Your device: model, system version and app identifiers',
      network: 'Your network: IP address, Wi-Fi and mobile carrier',
      location: 'Your approximate location',
      behaviour: 'Your recent activity on this service',
      payment: 'Payment details: amount, payee and payment method',
    },
    status: {
      APPEAL_STATUS_OPEN: 'Received', APPEAL_STATUS_IN_REVIEW: 'Being reviewed',
      APPEAL_STATUS_UPHELD: 'Decision upheld', APPEAL_STATUS_OVERTURNED: 'Decision reversed',
    },
    statusText: {
      APPEAL_STATUS_OPEN: (due) => `We received your appeal. A person will review it and answer by ${due}.`,
      APPEAL_STATUS_IN_REVIEW: (due) => `A reviewer is looking at your appeal. You will have an answer by ${due}.`,
      APPEAL_STATUS_UPHELD: () => 'After review, the decision stands.',
      APPEAL_STATUS_OVERTURNED: () => 'After review, the decision was reversed.',
    },
    langSwitch: '中文',
  },
  zh: {
    brand: '账户决定',
    title: '关于您账户的决定',
    intro: '系统对您的操作做出的自动化决定、做出决定的原因，以及如何申诉。',
    signedOut: '请从应用内打开此页面，查看与您账户相关的决定。',
    signedOutHint: '为保障您的安全，登录链接仅在有限时间内、且仅在当前浏览器标签页中有效。',
    recent: '近期决定',
    none: '暂无与您账户相关的决定。',
    back: '‹ 全部决定',
    what: '发生了什么',
    why: '原因',
    noReasons: '未触发具体规则：该决定为此类操作的常规处理。',
    used: '我们使用的个人信息',
    automated: '此决定由系统自动做出，无人工参与。',
    degraded: '当时系统繁忙，此操作按同类操作的标准方式处理，而非单独评估。',
    appeal: '申诉',
    canAppeal: (d) => `您可以在 ${d} 前对此决定提出申诉。`,
    closed: (d) => `此决定的申诉期限已于 ${d} 截止。`,
    statement: '请说明情况',
    statementPh: '例如：这是我本人操作，当时在外地，用新手机登录。',
    contact: '联系方式（选填）',
    contactHint: '如希望我们与您联系，请留下邮箱或电话号码。',
    submit: '提交申诉',
    submitting: '正在提交…',
    submitted: '您的申诉已提交。',
    tooLong: `说明请不要超过 ${MAX_STATEMENT} 个字符。`,
    empty: '请说明情况。',
    yourAppeal: '您的申诉',
    appealTag: (x) => `申诉：${x}`,
    filed: (d) => `提交于 ${d}`,
    reviewerReason: '审核意见',
    signOut: '退出',
    privacy: '此页面仅您本人可见，不会显示任何他人的信息。',
    decidedOn: (d) => `决定时间：${d}`,
    errors: {
      not_found: '未找到该决定。',
      unauthenticated: '登录已过期，请从应用内重新打开此页面。',
      permission_denied: '您无权查看此内容。',
      already_exists: '此决定已有进行中的申诉。',
      failed_precondition: '此决定的申诉期限已过。',
      invalid_argument: '请检查您填写的内容。',
      resource_exhausted: '请求过于频繁，请稍后再试。',
      unavailable: '暂时无法连接服务，请稍后再试。',
      other: '出现错误，请稍后再试。',
    },
    events: {
      EVENT_TYPE_LOGIN: '登录', EVENT_TYPE_REGISTER: '注册', EVENT_TYPE_PASSWORD_RESET: '重置密码',
      EVENT_TYPE_PAYMENT: '支付', EVENT_TYPE_ATTENDANCE: '考勤打卡',
      EVENT_TYPE_DEVICE_REPORT: '设备检测', EVENT_TYPE_SERVICE_LOG: '操作',
    },
    eventTitle: {
      EVENT_TYPE_LOGIN: '登录', EVENT_TYPE_REGISTER: '注册', EVENT_TYPE_PASSWORD_RESET: '重置密码',
      EVENT_TYPE_PAYMENT: '支付', EVENT_TYPE_ATTENDANCE: '考勤打卡',
      EVENT_TYPE_DEVICE_REPORT: '设备检测', EVENT_TYPE_SERVICE_LOG: '操作',
    },
    outcomes: {
      OUTCOME_ALLOW: '已放行', OUTCOME_CHALLENGE: '需要验证', OUTCOME_REVIEW: '待人工审核', OUTCOME_DENY: '已拦截',
    },
    happened: {
      OUTCOME_ALLOW: (e) => `您的${e}已通过。`,
      OUTCOME_CHALLENGE: (e) => `在您的${e}完成前，我们请您确认是本人操作。`,
      OUTCOME_REVIEW: (e) => `您的${e}已暂缓，等待工作人员核实。`,
      OUTCOME_DENY: (e) => `您的${e}已被拦截。`,
    },
    cats: {
      device: '设备信息：型号、系统版本和应用标识',
      network: '网络信息：IP 地址、Wi-Fi 和运营商',
      location: '大致位置',
      behaviour: '您近期在本服务上的操作记录',
      payment: '支付信息：金额、收款方和支付方式',
    },
    status: {
      APPEAL_STATUS_OPEN: '已受理', APPEAL_STATUS_IN_REVIEW: '审核中',
      APPEAL_STATUS_UPHELD: '维持原决定', APPEAL_STATUS_OVERTURNED: '已撤销原决定',
    },
    statusText: {
      APPEAL_STATUS_OPEN: (due) => `我们已收到您的申诉，工作人员将进行审核，并在 ${due} 前答复您。`,
      APPEAL_STATUS_IN_REVIEW: (due) => `工作人员正在审核您的申诉，将在 ${due} 前答复您。`,
      APPEAL_STATUS_UPHELD: () => '经审核，维持原决定。',
      APPEAL_STATUS_OVERTURNED: () => '经审核，原决定已被撤销。',
    },
    langSwitch: 'English',
  },
};

const OUTCOME_CLASS = { OUTCOME_ALLOW: 'b-allow', OUTCOME_CHALLENGE: 'b-challenge', OUTCOME_REVIEW: 'b-review', OUTCOME_DENY: 'b-deny' };
const STATUS_CLASS = {
  APPEAL_STATUS_OPEN: 'b-in_review', APPEAL_STATUS_IN_REVIEW: 'b-in_review',
  APPEAL_STATUS_UPHELD: 'b-upheld', APPEAL_STATUS_OVERTURNED: 'b-overturned',
};

let lang = pickLang();
let t = T[lang];
const app = document.getElementById('app');

function pickLang() {
  const saved = localStorage.getItem('riskd.lang');
  if (saved === 'zh' || saved === 'en') return saved;
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  return String(prefs[0]).toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

function locale() { return lang === 'zh' ? 'zh-CN' : 'en-GB'; }

function setLang(l) {
  lang = l;
  t = T[l];
  localStorage.setItem('riskd.lang', l);
  applyChrome();
  route();
}

function applyChrome() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t.title;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t[el.dataset.t];
  document.getElementById('lang').textContent = t.langSwitch;
  document.getElementById('privacy').textContent = t.privacy;
}

function errorText(e) {
  const code = e instanceof APIError ? e.code : 'other';
  return t.errors[code] || t.errors.other;
}

function errorBox(e) {
  return h('div', { class: 'alert error', role: 'alert', 'data-code': e && e.code }, errorText(e));
}

function reasonText(r) {
  const msg = lang === 'zh' ? (r.messageZh || r.messageEn) : (r.messageEn || r.messageZh);
  return msg || '';
}

function eventName(type) { return t.events[type] || t.events.EVENT_TYPE_SERVICE_LOG; }

function outcomeBadge(o) {
  return h('span', { class: 'badge ' + (OUTCOME_CLASS[o] || 'b-neutral'), 'data-outcome': o }, t.outcomes[o] || o);
}

function statusBadge(s, prefixed) {
  const text = t.status[s] || s;
  return h('span', { class: 'badge ' + (STATUS_CLASS[s] || 'b-neutral'), 'data-status': s }, prefixed ? t.appealTag(text) : text);
}

function signedOut() {
  clear(app,
    h('div', { class: 'intro' }, h('h1', null, t.title)),
    h('div', { class: 'section', id: 'signed-out' },
      h('p', null, t.signedOut),
      h('p', { class: 'muted small' }, t.signedOutHint)));
}

async function showList() {
  clear(app, h('div', { class: 'intro' }, h('h1', null, t.title), h('p', null, t.intro)),
    h('div', { class: 'muted' }, h('span', { class: 'spinner' })));
  let decisions, appeals;
  try {
    const [d, a] = await Promise.all([
      call('DecisionService', 'ListDecisions', { pageSize: 50 }),
      call('AppealService', 'ListAppeals', { pageSize: 200 }),
    ]);
    decisions = d.decisions || [];
    appeals = a.appeals || [];
  } catch (e) {
    clear(app, h('div', { class: 'intro' }, h('h1', null, t.title)), errorBox(e));
    return;
  }
  const byDecision = {};
  for (const a of appeals) {
    const prev = byDecision[a.decisionId];
    if (!prev || (a.filedAt || '') > (prev.filedAt || '')) byDecision[a.decisionId] = a;
  }
  const list = h('div', { class: 'list', id: 'decisions' });
  if (decisions.length === 0) list.append(h('div', { class: 'section empty' }, t.none));
  for (const d of decisions) {
    const a = byDecision[d.decisionId];
    list.append(h('a', { class: 'item', href: '#/d/' + encodeURIComponent(d.decisionId), 'data-decision': d.decisionId },
      h('div', null,
        h('div', { class: 'what' }, t.eventTitle[d.eventType] || t.eventTitle.EVENT_TYPE_SERVICE_LOG),
        h('div', { class: 'when' }, fmtTime(d.decidedAt, locale()))),
      h('span', { class: 'chev', 'aria-hidden': 'true' }, '›'),
      h('div', { class: 'tags' }, outcomeBadge(d.outcome), a ? statusBadge(a.status, true) : null)));
  }
  clear(app, h('div', { class: 'intro' }, h('h1', null, t.title), h('p', null, t.intro)),
    h('h3', { class: 'list-title' }, t.recent), h('div', { style: null }, list),
    h('div', { class: 'row', style: null }, h('span', { class: 'spacer' }),
      h('button', { class: 'ghost small', id: 'sign-out', type: 'button', onclick: () => { signOut(); route(); } }, t.signOut)));
}

async function showDecision(id) {
  const back = h('a', { class: 'btn ghost back', href: '#/' }, t.back);
  clear(app, back, h('div', { class: 'muted' }, h('span', { class: 'spinner' })));
  let x;
  try {
    x = (await call('DecisionLogService', 'ExplainDecision', { decisionId: id })).explanation;
  } catch (e) {
    clear(app, back, errorBox(e));
    return;
  }
  const ev = eventName(x.eventType);
  const happened = (t.happened[x.outcome] || t.happened.OUTCOME_REVIEW)(ev);
  const reasons = x.reasons || [];
  const cats = x.dataCategories || [];
  const reversed = (x.appeals || []).some((a) => a.status === 'APPEAL_STATUS_OVERTURNED');
  const what = h('section', { class: 'section', id: 'what' },
    h('h2', null, t.what),
    h('div', { class: 'headline' }, h('div', { class: 'big' }, happened),
      h('div', { class: 'tags' }, outcomeBadge(x.outcome), reversed ? statusBadge('APPEAL_STATUS_OVERTURNED') : null)),
    h('p', { class: 'muted small' }, t.decidedOn(fmtTime(x.decidedAt, locale()))),
    x.fullyAutomated ? h('p', { class: 'small' }, t.automated) : null,
    x.degraded ? h('div', { class: 'alert info' }, t.degraded) : null);
  const why = h('section', { class: 'section', id: 'why' }, h('h2', null, t.why),
    reasons.length
      ? h('ul', { class: 'reasons' }, reasons.map((r) => h('li', null, reasonText(r))))
      : h('p', { class: 'muted' }, t.noReasons));
  const used = cats.length ? h('section', { class: 'section', id: 'used' }, h('h2', null, t.used),
    h('ul', { class: 'cats' }, cats.map((c) => h('li', { 'data-category': c }, h('span', { class: 'dot' }), h('span', null, t.cats[c] || c))))) : null;
  const appeals = (x.appeals || []).slice().sort((a, b) => (b.filedAt || '').localeCompare(a.filedAt || ''));
  const appealSec = h('section', { class: 'section', id: 'appeal' }, h('h2', null, t.appeal));
  const deadline = fmtDate(x.appealDeadline, locale());
  const current = appeals[0];
  if (current) appealSec.append(appealStatus(current));
  const open = current && (current.status === 'APPEAL_STATUS_OPEN' || current.status === 'APPEAL_STATUS_IN_REVIEW');
  if (!open) {
    if (x.appealable) {
      if (!current) appealSec.append(h('p', { class: 'deadline' }, t.canAppeal(deadline)));
      if (!current) appealSec.append(appealForm(id));
    } else if (!current && x.appealDeadline) {
      appealSec.append(h('p', { class: 'muted' }, t.closed(deadline)));
    }
  }
  clear(app, back, what, why, used, appealSec);
}

function appealStatus(a) {
  const due = fmtDate(a.dueAt, locale());
  const box = h('div', { id: 'appeal-status', 'data-status': a.status },
    h('h3', null, t.yourAppeal),
    h('div', { class: 'status-line' }, statusBadge(a.status), h('span', { class: 'muted small' }, t.filed(fmtTime(a.filedAt, locale())))),
    h('p', null, (t.statusText[a.status] || (() => ''))(due)));
  if (a.resolutionReason) {
    box.append(h('div', { class: 'resolution', id: 'resolution' },
      h('h3', null, t.reviewerReason), h('p', { id: 'resolution-reason' }, a.resolutionReason)));
  }
  if (a.statement) box.append(h('p', { class: 'muted small' }, '“' + a.statement + '”'));
  return box;
}

function appealForm(decisionId) {
  const statement = h('textarea', { id: 'statement', name: 'statement', rows: 6, maxlength: MAX_STATEMENT, placeholder: t.statementPh, required: true });
  const counter = h('span', { id: 'counter' }, `0 / ${MAX_STATEMENT.toLocaleString(locale())}`);
  const contact = h('input', { id: 'contact', name: 'contact', type: 'text', maxlength: 256, autocomplete: 'email' });
  const msg = h('div', { id: 'form-msg' });
  const submit = h('button', { class: 'primary', type: 'submit', id: 'submit-appeal' }, t.submit);
  const count = () => {
    const n = [...statement.value].length;
    counter.textContent = `${n.toLocaleString(locale())} / ${MAX_STATEMENT.toLocaleString(locale())}`;
    counter.className = n > MAX_STATEMENT ? 'over' : '';
  };
  statement.addEventListener('input', count);
  const form = h('form', { id: 'appeal-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'statement' }, t.statement), statement,
      h('div', { class: 'hint' }, h('span', null), counter)),
    h('div', { class: 'field' }, h('label', { for: 'contact' }, t.contact), contact,
      h('div', { class: 'hint' }, h('span', null, t.contactHint))),
    msg,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = statement.value.trim();
    if (!text) { clear(msg, h('div', { class: 'alert error' }, t.empty)); return; }
    if ([...text].length > MAX_STATEMENT) { clear(msg, h('div', { class: 'alert error' }, t.tooLong)); return; }
    submit.disabled = true;
    submit.textContent = t.submitting;
    try {
      await call('AppealService', 'FileAppeal', { decisionId, statement: text, contact: contact.value.trim() });
      await showDecision(decisionId);
      const sec = document.getElementById('appeal');
      if (sec) sec.prepend(h('div', { class: 'alert ok', id: 'filed-ok' }, t.submitted));
    } catch (err) {
      submit.disabled = false;
      submit.textContent = t.submit;
      clear(msg, errorBox(err));
    }
  });
  return form;
}

function route() {
  if (!token()) { signedOut(); return; }
  const m = location.hash.match(/^#\/d\/(.+)$/);
  if (m) showDecision(decodeURIComponent(m[1]));
  else showList();
}

const handed = takeFragmentToken();
if (handed.lang === 'zh' || handed.lang === 'en') { lang = handed.lang; t = T[lang]; }
if (handed.decision) history.replaceState(null, '', '#/d/' + encodeURIComponent(handed.decision));
document.getElementById('lang').addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh'));
window.addEventListener('hashchange', route);
applyChrome();
route();
