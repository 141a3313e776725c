/**
 * The access kind: what the guest instruction does to the page, the one fact a fault's handling
 * starts from (KVM's PFERR_WRITE_MASK / PFERR_FETCH_MASK in the EPT violation's exit
 * qualification). A write needs W (and, with PML, sets D); an execute needs X, which NX huge pages
 * withhold from huge leaves; a read needs a present leaf.
 */
export type AccessKind = 'read' | 'write' | 'exec';
