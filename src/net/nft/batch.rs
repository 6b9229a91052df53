//! The table as one nfnetlink batch: BATCH_BEGIN, the nf_tables messages,
//! BATCH_END. The kernel applies a batch as one transaction, so a failure
//! anywhere leaves the ruleset exactly as it was.

use netlink_packet_core::{NetlinkMessage, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Hook, HookNumber, InetHookNumber, NfTablesMessage, RuleAttribute,
    RuleMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::ruleset::{Chain, Rule, Ruleset, TABLE};

/// NFNL_SUBSYS_NFTABLES: the batch-begin marker names the subsystem the
/// batch is for in its res_id.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// NF_ACCEPT as a chain policy.
const POLICY_ACCEPT: u32 = 1;

/// One message of the batch and what it is, for error reports.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub msg: NfTablesMessage,
    /// Besides NLM_F_REQUEST | NLM_F_ACK, which every op carries.
    pub flags: u16,
    pub what: String,
}

fn table_attrs() -> Vec<TableAttribute> {
    vec![TableAttribute::Name(TABLE.to_string())]
}

/// Make table `ip skiff` hold exactly `rs`, in one transaction.
///
/// The table and its chains are created if missing and otherwise kept; each
/// chain is flushed and refilled. Deleting and re-creating the table would be
/// simpler but costs far more: every base chain removed unregisters a
/// netfilter hook, and each unregistration waits for an RCU grace period
/// (tens of milliseconds per container start and exit). Flushed rules are
/// freed by the kernel in the background. Chains that a ruleset no longer
/// names stay, empty.
pub(crate) fn replace_table(rs: &Ruleset) -> Vec<Op> {
    let mut ops = vec![Op {
        msg: NfTablesMessage::NewTable(TableMessage {
            attributes: table_attrs(),
        }),
        flags: NLM_F_CREATE,
        what: format!("NEWTABLE ip {TABLE}"),
    }];
    // Chains before rules: a jump must find its target chain.
    ops.extend(rs.chains.iter().map(chain_op));
    ops.extend(rs.chains.iter().map(flush_op));
    ops.extend(rs.rules.iter().map(rule_op));
    ops
}

/// DELRULE naming only a chain: every rule of that chain.
fn flush_op(c: &Chain) -> Op {
    Op {
        msg: NfTablesMessage::DeleteRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(TABLE.to_string()),
                RuleAttribute::Chain(c.name.clone()),
            ],
        }),
        flags: 0,
        what: format!("flush chain {}", c.name),
    }
}

/// GETTABLE ip skiff, sent on its own (reads are not batched).
pub(crate) fn get_table(seq: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    push_frame(
        &mut bytes,
        NetfilterProtoFamily::IPv4,
        0,
        NfTablesMessage::GetTable(TableMessage {
            attributes: table_attrs(),
        })
        .into(),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
    bytes
}

/// Remove table `ip skiff` (and everything in it); nothing else.
pub(crate) fn delete_table() -> Vec<Op> {
    vec![delete_op()]
}

fn delete_op() -> Op {
    Op {
        msg: NfTablesMessage::DeleteTable(TableMessage {
            attributes: table_attrs(),
        }),
        flags: 0,
        what: format!("DELTABLE ip {TABLE}"),
    }
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

fn chain_op(c: &Chain) -> Op {
    let mut attributes = vec![
        ChainAttribute::Table(TABLE.to_string()),
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

fn rule_op(r: &Rule) -> Op {
    Op {
        msg: NfTablesMessage::NewRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(TABLE.to_string()),
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
