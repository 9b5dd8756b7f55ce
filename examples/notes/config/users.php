<?php
// Who may sign in: name => [password hash, mail address]. Never served
// (berth.yml web.deny). The demo passwords are "wonderland" and
// "looking-glass".
return [
    'alice' => ['$2y$10$BuzAxlkiiHayKM.gpviht.Pht/izrkPJacq0ORup6jw9wvILQIQ..', 'alice@example.org'],
    'bob' => ['$2y$10$Zpe/cwZ1kS2n6M4z/UX87OX.5Nsk1m.4PqH5s3gEr9CbbrmWtCHYu', 'bob@example.org'],
];
