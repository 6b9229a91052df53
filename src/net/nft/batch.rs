//! Changes to a table (diff.rs) as one nfnetlink batch: BATCH_BEGIN, the
//! nf_tables messages, BATCH_END. The kernel applies a batch as one transaction, so a failure
//! anywhere leaves the ruleset exactly as it was.

use netlink_packet_core::{
    Emitable, NetlinkMessage, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, Hook, HookNumber, InetHookNumber, ListAttribute,
    NfTablesMessage, RuleAttribute, RuleMessage, SetAttribute, SetElementAttribute, SetElementList,
    SetElementMessage, SetFlags, SetMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::diff::{diff, Change};
use super::expr::verdict_data;
use super::ruleset::{Chain, Rule, Ruleset};
use super::set::{SetDef, SetKind, Value, DATA_VERDICT};

/// NFNL_SUBSYS_NFTABLES: the batch-begin marker names the subsystem the
/// batch is for in its res_id.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// NF_ACCEPT as a chain policy.
const POLICY_ACCEPT: u32 = 1;
/// Elements per message are cut at this many bytes: the element list is one
/// attribute, whose length field is 16 bits.
const ELEMENTS_MAX_BYTES: usize = 32 * 1024;

/// One message of the batch and what it is, for error reports.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub msg: NfTablesMessage,
    /// Besides NLM_F_REQUEST | NLM_F_ACK, which every op carries.
    pub flags: u16,
    pub what: String,
}

fn table_attrs(table: &str) -> Vec<TableAttribute> {
    vec![TableAttribute::Name(table.to_string())]
}

/// Make table `rs.table` hold exactly `rs` whatever it held, in one
/// transaction.
///
/// The table and its chains are created if missing and otherwise kept; each
/// chain is flushed and refilled. Deleting and re-creating the table would be
/// simpler but costs far more: every base chain removed unregisters a
/// netfilter hook, and each unregistration waits for an RCU grace period
/// (tens of milliseconds per container start and exit). Flushed rules are
/// freed by the kernel in the background. Chains that a ruleset no longer
/// names stay, empty.
pub(crate) fn replace_table(rs: &Ruleset) -> Vec<Op> {
    ops(&rs.table, &diff(None, rs))
}

/// The messages that make `changes` to `table`, in order.
pub(crate) fn ops(table: &str, changes: &[Change]) -> Vec<Op> {
    let mut out = Vec::with_capacity(changes.len());
    let mut set_ids = 0;
    for c in changes {
        match c {
            Change::AddTable => out.push(Op {
                msg: NfTablesMessage::NewTable(TableMessage {
                    attributes: table_attrs(table),
                }),
                flags: NLM_F_CREATE,
                what: format!("NEWTABLE ip {table}"),
            }),
            Change::AddChain(c) => out.push(chain_op(table, c)),
            Change::FlushChain(name) => out.push(flush_op(table, name)),
            Change::DelChain(name) => out.push(Op {
                msg: NfTablesMessage::DeleteChain(ChainMessage {
                    attributes: vec![
                        ChainAttribute::Table(table.to_string()),
                        ChainAttribute::Name(name.clone()),
                    ],
                }),
                flags: 0,
                what: format!("DELCHAIN {name}"),
            }),
            Change::AddRule(r) => out.push(rule_op(table, r)),
            Change::AddSet(def) => {
                set_ids += 1;
                out.push(set_op(table, def, set_ids));
            }
            Change::FlushSet(name) => out.push(Op {
                msg: NfTablesMessage::DeleteSetElement(SetElementMessage {
                    attributes: vec![
                        SetElementList::Table(table.to_string()),
                        SetElementList::Set(name.clone()),
                    ],
                }),
                flags: 0,
                what: format!("flush set {name}"),
            }),
            Change::DelSet(name) => out.push(Op {
                msg: NfTablesMessage::DeleteSet(SetMessage {
                    attributes: vec![
                        SetAttribute::Table(table.to_string()),
                        SetAttribute::Name(name.clone()),
                    ],
                }),
                flags: 0,
                what: format!("DELSET {name}"),
            }),
            Change::AddElements { set, elements } => {
                let list = elements.iter().map(|(k, v)| element(k, Some(v))).collect();
                out.extend(element_ops(table, set, list, true));
            }
            Change::DelElements { set, keys } => {
                let list = keys.iter().map(|k| element(k, None)).collect();
                out.extend(element_ops(table, set, list, false));
            }
        }
    }
    out
}

/// DELRULE naming only a chain: every rule of that chain.
fn flush_op(table: &str, chain: &str) -> Op {
    Op {
        msg: NfTablesMessage::DeleteRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.to_string()),
                RuleAttribute::Chain(chain.to_string()),
            ],
        }),
        flags: 0,
        what: format!("flush chain {chain}"),
    }
}

/// `id` names the set within the transaction; the kernel requires one even
/// though the elements and rules here refer to the set by name.
fn set_op(table: &str, def: &SetDef, id: u32) -> Op {
    let mut attributes = vec![
        SetAttribute::Table(table.to_string()),
        SetAttribute::Name(def.name.clone()),
        SetAttribute::Id(id),
    ];
    let (flags, kind) = match def.kind {
        SetKind::Set => (SetFlags::empty(), "set".to_string()),
        SetKind::Map(data) => {
            attributes.extend([
                SetAttribute::DataType(data.id),
                SetAttribute::DataLen(data.len),
            ]);
            (SetFlags::Map, format!("map to {} bytes", data.len))
        }
        // The kernel knows a verdict's size; it takes no data length.
        SetKind::VerdictMap => {
            attributes.push(SetAttribute::DataType(DATA_VERDICT));
            (SetFlags::Map, "vmap".to_string())
        }
    };
    let flags = match def.timeout_ms {
        Some(ms) => {
            attributes.push(SetAttribute::Timeout(ms));
            flags | SetFlags::Timeout | SetFlags::Eval
        }
        None => flags,
    };
    attributes.extend([
        SetAttribute::Flags(flags),
        SetAttribute::KeyType(def.key.id),
        SetAttribute::KeyLen(def.key.len),
    ]);
    Op {
        msg: NfTablesMessage::NewSet(SetMessage { attributes }),
        flags: NLM_F_CREATE,
        what: format!("NEWSET {} ({kind}, key {} bytes)", def.name, def.key.len),
    }
}

fn element(key: &[u8], value: Option<&Value>) -> ListAttribute<SetElementAttribute> {
    let mut attrs = vec![SetElementAttribute::Key(DataAttribute::Value(key.to_vec()))];
    match value {
        None | Some(Value::None) => {}
        Some(Value::Data(d)) => {
            attrs.push(SetElementAttribute::Data(DataAttribute::Value(d.clone())))
        }
        Some(Value::Verdict(v)) => attrs.push(SetElementAttribute::Data(verdict_data(v))),
    }
    ListAttribute::Element(attrs)
}

/// NEWSETELEM/DELSETELEM messages for `list`, as few as fit.
fn element_ops(
    table: &str,
    set: &str,
    list: Vec<ListAttribute<SetElementAttribute>>,
    add: bool,
) -> Vec<Op> {
    let mut chunks: Vec<Vec<ListAttribute<SetElementAttribute>>> = vec![Vec::new()];
    let mut size = 0;
    for e in list {
        let len = e.buffer_len();
        if size + len > ELEMENTS_MAX_BYTES && size > 0 {
            chunks.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(last) = chunks.last_mut() {
            last.push(e);
        }
    }
    chunks
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|chunk| {
            let n = chunk.len();
            let msg = SetElementMessage {
                attributes: vec![
                    SetElementList::Table(table.to_string()),
                    SetElementList::Set(set.to_string()),
                    SetElementList::Elements(chunk),
                ],
            };
            if add {
                Op {
                    msg: NfTablesMessage::NewSetElement(msg),
                    flags: NLM_F_CREATE,
                    what: format!("NEWSETELEM {set} ({n} elements)"),
                }
            } else {
                Op {
                    msg: NfTablesMessage::DeleteSetElement(msg),
                    flags: 0,
                    what: format!("DELSETELEM {set} ({n} elements)"),
                }
            }
        })
        .collect()
}

/// GETTABLE ip `table`, sent on its own (reads are not batched).
pub(crate) fn get_table(table: &str, seq: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    push_frame(
        &mut bytes,
        NetfilterProtoFamily::IPv4,
        0,
        NfTablesMessage::GetTable(TableMessage {
            attributes: table_attrs(table),
        })
        .into(),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
    bytes
}

/// Remove table `ip table` (and everything in it); nothing else.
pub(crate) fn delete_table(table: &str) -> Vec<Op> {
    vec![Op {
        msg: NfTablesMessage::DeleteTable(TableMessage {
            attributes: table_attrs(table),
        }),
        flags: 0,
        what: format!("DELTABLE ip {table}"),
    }]
}

fn hook_name(h: InetHookNumber) -> &'static str {
    match h {
        InetHookNumber::PreRouting => "prerouting",
        InetHookNumber::LocalIn => "input",
        InetHookNumber::Forward => "forward",
        InetHookNumber::LocalOut => "output",
        InetHookNumber::PostRouting => "postrouting",
        InetHookNumber::Ingress => "ingress",
        _ => "?",
    }
}

fn chain_op(table: &str, c: &Chain) -> Op {
    let mut attributes = vec![
        ChainAttribute::Table(table.to_string()),
        ChainAttribute::Name(c.name.clone()),
    ];
    let what = match &c.hook {
        Some(h) => {
            attributes.extend([
                ChainAttribute::Hook(vec![
                    Hook::Number(HookNumber::Inet(h.hook)),
                    // The kernel reads the priority as a signed 32-bit value.
                    Hook::Priority(h.priority as u32),
                ]),
                ChainAttribute::Policy(POLICY_ACCEPT),
                ChainAttribute::Type(h.ty.name().to_string()),
            ]);
            format!(
                "NEWCHAIN {} (type {} hook {} priority {})",
                c.name,
                h.ty.name(),
                hook_name(h.hook),
                h.priority
            )
        }
        None => format!("NEWCHAIN {}", c.name),
    };
    Op {
        msg: NfTablesMessage::NewChain(ChainMessage { attributes }),
        flags: NLM_F_CREATE,
        what,
    }
}

fn rule_op(table: &str, r: &Rule) -> Op {
    Op {
        msg: NfTablesMessage::NewRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.to_string()),
                RuleAttribute::Chain(r.chain.clone()),
                RuleAttribute::Expressions(r.exprs()),
            ],
        }),
        // Without APPEND the kernel inserts each rule at the head of its chain.
        flags: NLM_F_CREATE | NLM_F_APPEND,
        what: format!("NEWRULE {}: {}", r.chain, r.text()),
    }
}

/// The bytes of one batch and the sequence number of each part.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub bytes: Vec<u8>,
    pub begin_seq: u32,
    /// One per op, in order.
    pub seqs: Vec<u32>,
}

fn push_frame(
    out: &mut Vec<u8>,
    family: NetfilterProtoFamily,
    res_id: u16,
    inner: NetfilterMessageInner,
    flags: u16,
    seq: u32,
) {
    let msg = NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner);
    let mut frame = NetlinkMessage::from(msg);
    frame.header.flags = flags;
    frame.header.sequence_number = seq;
    frame.finalize();
    let start = out.len();
    out.resize(start + frame.buffer_len(), 0);
    frame.serialize(&mut out[start..]);
}

pub(crate) fn encode(ops: &[Op], first_seq: u32) -> Encoded {
    let mut bytes = Vec::new();
    let begin_seq = first_seq;
    // The markers carry no NLM_F_ACK: kernels before 6.10 never ack them and
    // newer ones only on request, so leaving it off keeps the count of
    // replies the same everywhere.
    push_frame(
        &mut bytes,
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchBegin.into(),
        NLM_F_REQUEST,
        begin_seq,
    );
    let mut seqs = Vec::with_capacity(ops.len());
    let mut seq = begin_seq;
    for op in ops {
        seq = seq.wrapping_add(1);
        seqs.push(seq);
        push_frame(
            &mut bytes,
            NetfilterProtoFamily::IPv4,
            0,
            op.msg.clone().into(),
            NLM_F_REQUEST | NLM_F_ACK | op.flags,
            seq,
        );
    }
    push_frame(
        &mut bytes,
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchEnd.into(),
        NLM_F_REQUEST,
        seq.wrapping_add(1),
    );
    Encoded {
        bytes,
        begin_seq,
        seqs,
    }
}
